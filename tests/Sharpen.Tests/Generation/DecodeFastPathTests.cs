using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Tests.Generation;

/// <summary>The decode fast path (<see cref="DecodeSession"/>) and H₂O eviction against the reference path
/// (<see cref="CausalLM.Forward"/> with a KV cache) and teacher-forced scoring.</summary>
public class DecodeFastPathTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcdefghijk ");
    static readonly string[] Prompts = ["abc", "hello", "k", "badge jab"];   // different lengths: left padding

    static CausalLM Model(string type, bool tied, int kvHeads, long seed = 5) =>
        new(CausalLMTests.Tiny(type, tied, kvHeads) with { VocabSize = Tok.VocabSize, InitializerRange = 0.5 }, seed);

    static void SameTokensCloseLogProbs(IReadOnlyList<Rollout> expected, IReadOnlyList<Rollout> actual, double tol = 1e-4)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.Equal(expected[i].CompletionIds, actual[i].CompletionIds);
            for (int t = 0; t < expected[i].LogProbs.Length; t++)
                Assert.True(Math.Abs(expected[i].LogProbs[t] - actual[i].LogProbs[t]) < tol, $"sequence {i} token {t}: {expected[i].LogProbs[t]} vs {actual[i].LogProbs[t]}");
        }
    }

    static void MatchesScoring(CausalLM model, IReadOnlyList<Rollout> rollouts)
    {
        var scored = Scoring.Score(model, rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(),
            rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), padId: 0, microBatch: 7);
        for (int i = 0; i < rollouts.Count; i++)
            for (int t = 0; t < scored[i].Length; t++)
                Assert.True(Math.Abs(rollouts[i].LogProbs[t] - scored[i][t]) < 1e-4, $"sequence {i} token {t}: {rollouts[i].LogProbs[t]} vs {scored[i][t]}");
    }

    [Theory]
    [InlineData("llama", false, 2)]
    [InlineData("llama", false, 1)]
    [InlineData("llama", false, 4)]
    [InlineData("qwen2", true, 2)]
    public void Fast_greedy_equals_reference_and_no_cache_and_scores_like_teacher_forcing(string type, bool tied, int kvHeads)
    {
        using var model = Model(type, tied, kvHeads);
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 14, StopAtEos = false, SamplesPerPrompt = 3 };
        var fast = engine.Generate(Prompts, o);
        SameTokensCloseLogProbs(engine.Generate(Prompts, o with { FastDecode = false }), fast);
        SameTokensCloseLogProbs(engine.Generate(Prompts, o with { UseKvCache = false }), fast);
        MatchesScoring(model, fast);
    }

    [Fact]
    public void Fast_sampling_draws_what_the_reference_draws_with_the_same_seed()
    {
        using var model = Model("qwen2", true, 2);
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0.9, TopP = 0.95, MaxNewTokens = 12, SamplesPerPrompt = 4, Seed = 9, StopAtEos = false };
        var fast = engine.Generate(Prompts, o);
        SameTokensCloseLogProbs(engine.Generate(Prompts, o with { FastDecode = false }), fast);
        MatchesScoring(model, fast);
    }

    [Fact]
    public void Fast_path_merges_lora_adapters_and_honours_disabling_them()
    {
        using var model = Model("llama", false, 2);
        model.AddLora(new LoraOptions { R = 2, Alpha = 4 }, seed: 3);
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
                if (name.Contains("lora_B")) p.normal_(0, 0.3);   // non-zero B: the adapters change the function
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 10, StopAtEos = false };
        var adapted = engine.Generate(Prompts, o);
        SameTokensCloseLogProbs(engine.Generate(Prompts, o with { FastDecode = false }), adapted);
        MatchesScoring(model, adapted);
        using (model.AdaptersDisabled())
        {
            var baseOut = engine.Generate(Prompts, o);
            SameTokensCloseLogProbs(engine.Generate(Prompts, o with { FastDecode = false }), baseOut);
            Assert.NotEqual(adapted.Select(r => r.CompletionText), baseOut.Select(r => r.CompletionText));
        }
    }

    [Fact]
    public void A_kv_budget_at_least_the_sequence_length_gives_the_full_cache_output()
    {
        using var model = Model("llama", false, 2);
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 12, StopAtEos = false, SamplesPerPrompt = 2 };
        var full = engine.Generate(Prompts, o);
        // The longest prompt has 9 tokens: 9 + 12 = 21 positions fit in a budget of 21, so nothing is ever evicted.
        SameTokensCloseLogProbs(full, engine.Generate(Prompts, o with { KvBudget = 21, KvRecent = 4 }));
        SameTokensCloseLogProbs(full, engine.Generate(Prompts, o with { KvBudget = 40 }));
    }

    [Fact]
    public void Eviction_keeps_the_budget_and_the_recent_window_in_every_layer_and_head()
    {
        using var model = Model("llama", false, 2);
        var prompt = Tok.Encode("badge jab hi").Select(i => (long)i).ToArray();   // 12 tokens, more than the budget
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        using var session = model.StartDecoding(1, 40, new KvBudget(6, 2));
        var logits = session.Prefill(tensor(prompt).view(1, -1), ones(1, prompt.Length, dtype: ScalarType.Int64));
        for (int step = 0; step < 10; step++)
        {
            Assert.Equal(6, session.Filled);
            long newest = prompt.Length - 1 + step;
            for (int layer = 0; layer < model.Config.NumHiddenLayers; layer++)
                foreach (var kept in session.KeptColumns(layer))
                {
                    Assert.Equal(6, kept.Distinct().Count());
                    Assert.Contains(newest, kept);
                    Assert.Contains(newest - 1, kept);
                    Assert.All(kept, c => Assert.InRange(c, 0, newest));
                }
            logits = session.Step(logits.argmax(-1));
        }
        Assert.Equal(prompt.Length + 1, session.Slots);   // the prompt's slots, reused; a short prompt would have budget + 1
    }

    [Fact]
    public void Victims_are_padding_first_then_the_least_attended_outside_the_recent_window()
    {
        // Two heads, six slots holding columns 0..5; the newest column is 5 and the recent window is 2 (columns 4, 5).
        var scores = tensor(new float[] { 0.5f, 0.1f, 0.9f, 0.3f, 0.2f, 0.7f, 0.2f, 0.4f, 0.6f, 0.05f, 0.3f, 0.8f }).view(1, 2, 6);
        var columns = arange(6, dtype: ScalarType.Int64).view(1, 1, 6).expand(1, 2, 6).contiguous();
        var valid = tensor(new[] { true, true, true, true, true, true, false, true, true, true, true, true }).view(1, 2, 6);
        var victims = HeavyHitters.Victims(scores, columns, valid, newestColumn: 5, recent: 2).data<long>().ToArray();
        // Head 0: candidates 0..3 score 0.5, 0.1, 0.9, 0.3 → slot 1. Column 4 (0.2) is lower but recent.
        // Head 1: slot 0 holds padding → evicted before the 0.05 of slot 3.
        Assert.Equal(new long[] { 1, 0 }, victims);

        var keep = HeavyHitters.Keep(scores, columns, valid, newestColumn: 5, budget: 4, recent: 2).data<long>().ToArray();
        // Head 0: recent {4, 5} + the two heaviest of {0.5, 0.1, 0.9, 0.3} = slots 2 and 0.
        // Head 1: recent {4, 5} + the two heaviest real ones of {0.4, 0.6, 0.05} = slots 2 and 1.
        Assert.Equal(new long[] { 0, 2, 4, 5, 1, 2, 4, 5 }, keep);
    }

    [Fact]
    public void Kv_budget_options_are_checked()
    {
        Assert.Throws<ArgumentException>(() => new SamplingOptions { KvBudget = 1 }.Validate());
        Assert.Throws<ArgumentException>(() => new SamplingOptions { KvBudget = 8, KvRecent = 8 }.Validate());
        Assert.Throws<ArgumentException>(() => new SamplingOptions { KvRecent = 2 }.Validate());
        Assert.Throws<ArgumentException>(() => new SamplingOptions { KvBudget = 8, FastDecode = false }.Validate());
        Assert.Equal(new KvBudget(8, 4), new SamplingOptions { KvBudget = 8 }.Validate().Budget);
    }
}
