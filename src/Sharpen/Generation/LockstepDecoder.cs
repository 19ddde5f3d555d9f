using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Generation;

/// <summary>
/// Two models decoding the same prompts in lock-step through their own KV caches, each token sampled from a distribution
/// built from both models' next-token logits: the geometric mixture of <see cref="GeometricMixtureEngine"/> and NLPO's masked
/// policy of <see cref="ActionMaskEngine"/>. Prompts are left-padded into one batch, each prompt's samples are its rows
/// repeated after the prefill, and a row that emits EOS is fed padding until every row has stopped or the token limit is reached.
/// </summary>
internal static class LockstepDecoder
{
    /// <summary>
    /// Decodes <paramref name="prompts"/> (none empty) with <paramref name="first"/> and <paramref name="second"/> (the
    /// same vocabulary). <paramref name="next"/> maps the two models' logits <c>(n, V)</c> to the tensor to sample from and
    /// its normalised log-probs (both <c>(n, V)</c>); the rollouts carry the sampled tokens' log-probs. Both models are in eval
    /// mode while decoding and get their training mode back after.
    /// </summary>
    public static IReadOnlyList<Rollout> Generate(CausalLM first, CausalLM second, ITokenizer tokenizer, IReadOnlySet<int> eosIds, int padId,
        IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options, Func<Tensor, Tensor, (Tensor Scores, Tensor LogProbs)> next)
    {
        bool firstTraining = first.training, secondTraining = second.training;
        first.eval(); second.eval();
        using var generator = new Generator((ulong)options.Seed);
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            int count = prompts.Count, g = options.SamplesPerPrompt, n = count * g, maxNew = options.MaxNewTokens;
            int p = prompts.Max(x => x.Count), total = p + maxNew;
            if (total > first.Config.MaxPositionEmbeddings)
                throw new ArgumentException($"prompt ({p} tokens) + max new tokens ({maxNew}) exceed max_position_embeddings ({first.Config.MaxPositionEmbeddings})");
            var ids = new long[count * p];
            var mask = new long[count * p];
            for (int i = 0; i < count; i++)
            {
                int pad = p - prompts[i].Count;
                for (int j = 0; j < p; j++) { ids[i * p + j] = j < pad ? padId : prompts[i][j - pad]; mask[i * p + j] = j < pad ? 0 : 1; }
            }
            var promptIds = tensor(ids).view(count, p);
            var promptMask = tensor(mask).view(count, p);
            var repeat = arange(count, dtype: ScalarType.Int64).repeat_interleave(g);   // (n)
            using var firstSession = first.StartDecoding(count, total);
            using var secondSession = second.StartDecoding(count, total);
            var firstLogits = firstSession.Prefill(promptIds, promptMask).index_select(0, repeat);
            var secondLogits = secondSession.Prefill(promptIds, promptMask).index_select(0, repeat);
            if (g > 1) { firstSession.SelectRows(repeat); secondSession.SelectRows(repeat); }

            var tokens = Enumerable.Range(0, n).Select(_ => new List<int>(maxNew)).ToArray();
            var logps = Enumerable.Range(0, n).Select(_ => new List<float>(maxNew)).ToArray();
            var stop = new StopReason?[n];
            for (int step = 0; step < maxNew; step++)
            {
                using var stepScope = NewDisposeScope();
                var (scores, logProbs) = next(firstLogits, secondLogits);                      // (n, V) each
                var sampled = RolloutEngine.Sample(scores, options, generator);                // (n)
                var lp = logProbs.gather(1, sampled.view(n, 1)).view(n);                       // the sampled tokens' log-probs
                var nextArr = sampled.data<long>().ToArray();
                var lpArr = lp.to_type(ScalarType.Float32).data<float>().ToArray();
                bool allDone = true;
                for (int i = 0; i < n; i++)
                {
                    if (stop[i] is not null) { nextArr[i] = padId; continue; }
                    int tok = (int)nextArr[i];
                    tokens[i].Add(tok);
                    logps[i].Add(lpArr[i]);
                    if (options.StopAtEos && eosIds.Contains(tok)) stop[i] = StopReason.Eos;
                    else allDone = false;
                }
                if (allDone || step == maxNew - 1) break;
                var fed = tensor(nextArr).view(n, 1);
                firstLogits = firstSession.Step(fed).MoveToOuterDisposeScope();
                secondLogits = secondSession.Step(fed).MoveToOuterDisposeScope();
            }
            var results = new List<Rollout>(n);
            for (int i = 0; i < n; i++)
            {
                int promptIndex = i / g;
                var comp = tokens[i].ToArray();
                results.Add(new Rollout(promptIndex, i % g, prompts[promptIndex].ToArray(), comp, tokenizer.Decode(comp, skipSpecialTokens: true),
                    logps[i].ToArray(), stop[i] ?? StopReason.MaxTokens));
            }
            return results;
        }
        finally
        {
            if (firstTraining) first.train();
            if (secondTraining) second.train();
        }
    }
}
