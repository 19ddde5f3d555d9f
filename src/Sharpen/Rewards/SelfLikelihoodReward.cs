using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Rewards;

/// <summary>
/// Sharpening's self-reward (Huang et al. 2024, "Self-Improvement in Language Models: The Sharpening Mechanism",
/// arXiv:2412.01951): r(x, y) = log π_base(y | x), the teacher-forced log-likelihood of the completion under a frozen
/// model (the policy as it was before training), summed over the completion's tokens and its EOS (the layout of
/// <see cref="CompletionTokens"/>), or with <c>normalize</c> divided by that token count (length-normalised). Maximising it
/// with a KL to π_base is the paper's RLHF-Sharpening; picking the best of N samples by it is its SFT-Sharpening.
/// </summary>
public sealed class SelfLikelihoodReward : IRewardFunction, IDisposable
{
    readonly CausalLM _model;
    readonly ITokenizer _tokenizer;
    readonly bool _owns;

    /// <summary>Scores with <paramref name="model"/>; with <paramref name="ownsModel"/> it is disposed with the reward.
    /// Pass a frozen copy (<c>policy.Copy(trainable: false)</c>) to score by the starting policy while the policy trains.</summary>
    public SelfLikelihoodReward(CausalLM model, ITokenizer tokenizer, bool normalize, bool ownsModel = false, int microBatch = 16, string name = "self_likelihood")
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(microBatch, 1);
        (_model, _tokenizer, Normalize, _owns, MicroBatch, Name) = (model, tokenizer, normalize, ownsModel, microBatch, name);
    }

    /// <inheritdoc />
    public string Name { get; }
    /// <summary>Divide the summed log-probability by the number of scored tokens (completion + EOS).</summary>
    public bool Normalize { get; }
    /// <summary>Sequences per forward pass.</summary>
    public int MicroBatch { get; }

    /// <summary>log π(y | x) (or its per-token mean) of each (prompt, completion).</summary>
    public double[] Score(IReadOnlyList<(string Prompt, string Completion)> items)
    {
        var result = new double[items.Count];
        int padId = _tokenizer.PadTokenId ?? 0;
        int eos = CompletionTokens.EosId(_tokenizer, _model.Config);
        using var _ = no_grad();
        for (int start = 0; start < items.Count; start += MicroBatch)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(MicroBatch, items.Count - start);
            var prompts = new List<IReadOnlyList<int>>();
            var completions = new List<IReadOnlyList<int>>();
            for (int i = start; i < start + n; i++)
            {
                var p = _tokenizer.Encode(items[i].Prompt);
                if (p.Count == 0) throw new ArgumentException($"a prompt encodes to no tokens: \"{items[i].Prompt}\"");
                prompts.Add(p.ToArray());
                completions.Add(CompletionTokens.Ids(_tokenizer, eos, items[i].Completion));
            }
            var sb = SequenceBatch.Build(prompts, completions, padId);
            var mask = sb.CompletionMask.to_type(ScalarType.Float32);                                       // (N, A)
            var lp = Scoring.CompletionLogProbs(_model, sb).to_type(ScalarType.Float32) * mask;             // (N, A)  log π(y_t | x, y_<t)
            var seq = lp.sum(1);                                                                             // (N)  log π(y | x)
            if (Normalize) seq = seq / mask.sum(1).clamp_min(1);                                            // (N)  per-token mean
            var r = seq.data<float>().ToArray();
            for (int i = 0; i < n; i++) result[start + i] = r[i];
        }
        return result;
    }

    /// <inheritdoc />
    public ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Score(batch.Select(c => (c.Prompt, c.Completion)).ToList()).Select(x => (double?)x).ToArray());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (_owns) _model.Dispose();
    }
}
