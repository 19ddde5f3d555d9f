using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using static Sharpen.Tests.Algorithms.Tensors;
using static TorchSharp.torch;

namespace Sharpen.Tests.Generation;

/// <summary>Nash-MD's token-wise geometric mixture π^(1−β)·π_ref^β: the mixing formula by hand, its end points, and its log-probs against a teacher-forced pass of both models.</summary>
public class GeometricMixtureEngineTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcdefgh");

    static CausalLM Model(long seed) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, InitializerRange = 0.5, MaxPositionEmbeddings = 32 }, seed);

    [Fact]
    public void Mix_is_the_normalised_weighted_sum_of_log_probs()
    {
        using var scope = NewDisposeScope();
        // softmax([0, ln 3]) = [1/4, 3/4], softmax([ln 3, 0]) = [3/4, 1/4].
        // β = 0.5: √(1/4·3/4) on both → [½, ½] → log ½ = −0.6931472 each.
        // β = 0.25: ∝ (1/4)^0.75(3/4)^0.25 and (3/4)^0.75(1/4)^0.25 → log-probs [−1.0050525, −0.4557464].
        var a = Mat(1, 0, (float)Math.Log(3));
        var b = Mat(1, (float)Math.Log(3), 0);
        Close([-0.6931472, -0.6931472], GeometricMixtureEngine.Mix(a, b, 0.5));
        Close([-1.0050525, -0.4557464], GeometricMixtureEngine.Mix(a, b, 0.25));
    }

    [Fact]
    public void Beta_zero_is_the_policy_and_beta_one_the_reference()
    {
        using var policy = Model(1);
        using var reference = Model(2);
        var prompts = new[] { "ab", "cde" };
        var greedy = new SamplingOptions { Temperature = 0, MaxNewTokens = 6, StopAtEos = false };
        string[] Texts(IRolloutEngine e) => e.Generate(prompts, greedy).Select(r => r.CompletionText).ToArray();
        var fromPolicy = Texts(new RolloutEngine(policy, Tok));
        var fromReference = Texts(new RolloutEngine(reference, Tok));
        Assert.NotEqual(fromPolicy, fromReference);   // the two models really differ
        Assert.Equal(fromPolicy, Texts(new GeometricMixtureEngine(policy, reference, Tok, 0.0)));
        Assert.Equal(fromReference, Texts(new GeometricMixtureEngine(policy, reference, Tok, 1.0)));
    }

    [Fact]
    public void Sampled_log_probs_are_the_mixture_of_both_models_teacher_forced()
    {
        using var policy = Model(3);
        using var reference = Model(4);
        const double beta = 0.3;
        IRolloutEngine engine = new GeometricMixtureEngine(policy, reference, Tok, beta);
        var rollouts = engine.Generate(new List<string> { "abc", "h" }, new SamplingOptions { MaxNewTokens = 5, SamplesPerPrompt = 3, Seed = 7, StopAtEos = false });
        Assert.Equal(6, rollouts.Count);
        using var _ = no_grad();
        foreach (var r in rollouts)
        {
            using var scope = NewDisposeScope();
            // Teacher-forced: logits at the positions that predicted each completion token, from each model separately.
            var seq = r.PromptIds.Concat(r.CompletionIds).Select(i => (long)i).ToArray();
            var input = tensor(seq).view(1, -1);
            int p = r.PromptIds.Length, n = r.CompletionIds.Length;
            var lp = policy.Forward(input).Logits[0].narrow(0, p - 1, n).log_softmax(-1);        // (n, V)
            var lr = reference.Forward(input).Logits[0].narrow(0, p - 1, n).log_softmax(-1);
            var mixed = ((1 - beta) * lp + beta * lr).log_softmax(-1);
            var expected = mixed.gather(1, tensor(r.CompletionIds.Select(i => (long)i).ToArray()).view(n, 1)).view(n);
            Close(Values(expected).Select(v => (double)v).ToArray(), tensor(r.LogProbs), 1e-4);
        }
    }
}
