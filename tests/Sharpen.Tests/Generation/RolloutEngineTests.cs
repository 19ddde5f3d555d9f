using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Tests.Generation;

public class RolloutEngineTests
{
    // 4 specials + 12 characters = vocab 16.
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcdefghijk ");

    static CausalLM Model(long seed = 11, int[]? eos = null) =>
        new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, EosTokenIds = eos ?? [2], InitializerRange = 0.5 }, seed);

    static readonly string[] Prompts = ["abc", "hello", "k", "badge jab"];

    [Fact]
    public void Greedy_with_kv_cache_equals_recomputing_every_step()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 12, StopAtEos = false };
        var cached = engine.Generate(Prompts, o);
        var recomputed = engine.Generate(Prompts, o with { UseKvCache = false });
        Assert.Equal(Prompts.Length, cached.Count);
        for (int i = 0; i < cached.Count; i++)
        {
            Assert.Equal(recomputed[i].CompletionIds, cached[i].CompletionIds);
            Assert.Equal(12, cached[i].CompletionIds.Length);
            for (int t = 0; t < 12; t++) Assert.True(Math.Abs(recomputed[i].LogProbs[t] - cached[i].LogProbs[t]) < 1e-4);
        }
    }

    [Fact]
    public void A_left_padded_batch_gives_what_each_prompt_gives_alone()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 10, StopAtEos = false };
        var batch = engine.Generate(Prompts, o);
        for (int i = 0; i < Prompts.Length; i++)
        {
            var alone = engine.Generate([Prompts[i]], o)[0];
            Assert.Equal(alone.CompletionIds, batch[i].CompletionIds);
            Assert.Equal(alone.CompletionText, batch[i].CompletionText);
            for (int t = 0; t < 10; t++) Assert.True(Math.Abs(alone.LogProbs[t] - batch[i].LogProbs[t]) < 1e-4);
        }
    }

    [Fact]
    public void Generation_log_probs_equal_teacher_forced_scoring_at_temperature_one()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        // Sampling is tempered and truncated, but the reported log-probs are those of the plain policy.
        var rollouts = engine.Generate(Prompts, new SamplingOptions { Temperature = 0.7, TopK = 6, MaxNewTokens = 9, SamplesPerPrompt = 3, Seed = 5 });
        var scored = Scoring.Score(model, rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(),
            rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), padId: 0, microBatch: 5);
        for (int i = 0; i < rollouts.Count; i++)
        {
            Assert.Equal(rollouts[i].CompletionIds.Length, scored[i].Length);
            for (int t = 0; t < scored[i].Length; t++)
                Assert.True(Math.Abs(rollouts[i].LogProbs[t] - scored[i][t]) < 1e-4, $"sequence {i} token {t}: {rollouts[i].LogProbs[t]} vs {scored[i][t]}");
        }
    }

    [Fact]
    public void Same_seed_same_samples_and_another_seed_other_samples()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { MaxNewTokens = 12, SamplesPerPrompt = 4, Seed = 42, StopAtEos = false };
        var a = engine.Generate(Prompts, o);
        var b = engine.Generate(Prompts, o);
        var c = engine.Generate(Prompts, o with { Seed = 43 });
        Assert.Equal(a.Select(r => r.CompletionText), b.Select(r => r.CompletionText));
        Assert.NotEqual(a.Select(r => r.CompletionText), c.Select(r => r.CompletionText));
    }

    [Fact]
    public void Samples_per_prompt_are_grouped_and_ordered()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var sampled = engine.Generate(Prompts, new SamplingOptions { MaxNewTokens = 5, SamplesPerPrompt = 3, Seed = 1 });
        Assert.Equal(12, sampled.Count);
        for (int i = 0; i < 12; i++)
        {
            Assert.Equal(i / 3, sampled[i].PromptIndex);
            Assert.Equal(i % 3, sampled[i].SampleIndex);
            Assert.Equal(Tok.Encode(Prompts[i / 3]), sampled[i].PromptIds);
        }
        // Greedy samples of one prompt are identical, and equal to a single greedy sample.
        var greedy = engine.Generate(Prompts, new SamplingOptions { Temperature = 0, MaxNewTokens = 5, SamplesPerPrompt = 3 });
        var single = engine.Generate(Prompts, new SamplingOptions { Temperature = 0, MaxNewTokens = 5 });
        for (int i = 0; i < 12; i++) Assert.Equal(single[i / 3].CompletionIds, greedy[i].CompletionIds);
    }

    [Fact]
    public void Chunked_batches_give_the_same_greedy_output()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 6, SamplesPerPrompt = 2 };
        var whole = engine.Generate(Prompts, o);
        var chunked = engine.Generate(Prompts, o with { MaxBatchSequences = 3 });
        Assert.Equal(whole.Select(r => r.CompletionText), chunked.Select(r => r.CompletionText));
    }

    [Fact]
    public void The_kv_cache_budget_bounds_the_sequences_per_chunk_and_leaves_greedy_output_unchanged()
    {
        using var model = Model();
        var c = model.Config;
        // Keys and values, every layer, every KV head, 4-byte floats: bytes per cached position of one sequence.
        long perPosition = 2L * c.NumHiddenLayers * c.NumKeyValueHeads * c.HeadDim * 4;
        var budgeted = new RolloutEngine(model, Tok) { KvCacheMegabytes = 1 };
        Assert.Equal(1048576 / (perPosition * 20), budgeted.SequencesWithinCacheBudget(20));
        Assert.Equal(1048576 / (perPosition * 5), budgeted.SequencesWithinCacheBudget(20, kvBudget: 4));   // H₂O: budget + 1 slots
        Assert.Equal(long.MaxValue, new RolloutEngine(model, Tok) { KvCacheMegabytes = 0 }.SequencesWithinCacheBudget(20));
        // A budget of two sequences of the longest prompt (9 tokens) + 6 new tokens forces one prompt (two samples) per
        // chunk; greedy output equals one batch's.
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 6, SamplesPerPrompt = 2 };
        var whole = new RolloutEngine(model, Tok).Generate(Prompts, o);
        var tiny = new RolloutEngine(model, Tok) { KvCacheMegabytes = 2.5 * perPosition * 15 / 1048576 };
        Assert.Equal(2, tiny.SequencesWithinCacheBudget(15));
        Assert.Equal(whole.Select(r => r.CompletionText), tiny.Generate(Prompts, o).Select(r => r.CompletionText));
        Assert.Equal(RolloutEngine.DefaultKvCacheMegabytes, new RolloutEngine(model, Tok).KvCacheMegabytes);
        Assert.Throws<ArgumentException>(() => RolloutEngines.Create(
            RolloutSpec.Parse(new System.Text.Json.Nodes.JsonObject { ["kv_cache_mb"] = -1 }), model, Tok));
    }

    [Fact]
    public void Stops_at_eos_at_a_stop_string_or_at_the_token_limit()
    {
        using var free = Model();
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 8, StopAtEos = false };
        var reference = new RolloutEngine(free, Tok).Generate(["abc"], o)[0];
        Assert.Equal(StopReason.MaxTokens, reference.Stop);
        Assert.Equal(8, reference.CompletionIds.Length);

        // Declare the first greedy token an end-of-sequence id: generation stops right after it.
        int first = reference.CompletionIds[0];
        using var eosModel = Model(eos: [first]);
        var atEos = new RolloutEngine(eosModel, Tok).Generate(["abc"], o with { StopAtEos = true })[0];
        Assert.Equal(StopReason.Eos, atEos.Stop);
        Assert.Equal([first], atEos.CompletionIds);

        // A stop string made of the 2nd and 3rd greedy characters stops after the 3rd token.
        var text = Tok.Decode(reference.CompletionIds, skipSpecialTokens: false);
        var stop = text.Substring(1, 2);
        int expectedLength = text.IndexOf(stop, StringComparison.Ordinal) + 2;
        var atStop = new RolloutEngine(free, Tok).Generate(["abc"], o with { StopStrings = [stop] })[0];
        Assert.Equal(StopReason.StopString, atStop.Stop);
        Assert.Equal(expectedLength, atStop.CompletionIds.Length);
        Assert.EndsWith(stop, atStop.CompletionText);
    }

    [Fact]
    public void Sampling_frequencies_follow_the_softmax_and_top_k_renormalises()
    {
        using var model = Model(seed: 3);
        var engine = new RolloutEngine(model, Tok);
        var prompt = Tok.Encode("abc");
        double[] probs;
        using (var scope = NewDisposeScope())
        {
            var logits = model.Forward(tensor(prompt.Select(i => (long)i).ToArray()).view(1, -1)).Logits;
            probs = logits[0, -1].softmax(-1).to(ScalarType.Float64).data<double>().ToArray();
        }
        const int n = 6000;
        var draws = engine.Generate(Enumerable.Repeat((IReadOnlyList<int>)prompt, n).ToList(),
            new SamplingOptions { MaxNewTokens = 1, Seed = 9, MaxBatchSequences = 1024 });
        var freq = new double[Tok.VocabSize];
        foreach (var d in draws) freq[d.CompletionIds[0]] += 1.0 / n;
        for (int v = 0; v < Tok.VocabSize; v++)
            Assert.True(Math.Abs(freq[v] - probs[v]) < 4 * Math.Sqrt(probs[v] * (1 - probs[v]) / n) + 1e-3, $"token {v}: {freq[v]} vs {probs[v]}");

        var top2 = probs.Select((p, i) => (p, i)).OrderByDescending(x => x.p).Take(2).ToArray();
        var k2 = engine.Generate(Enumerable.Repeat((IReadOnlyList<int>)prompt, 2000).ToList(),
            new SamplingOptions { MaxNewTokens = 1, Seed = 9, TopK = 2, MaxBatchSequences = 1024 });
        Assert.All(k2, d => Assert.Contains(d.CompletionIds[0], top2.Select(x => x.i)));
        double share = k2.Count(d => d.CompletionIds[0] == top2[0].i) / 2000.0;
        double expected = top2[0].p / (top2[0].p + top2[1].p);
        Assert.True(Math.Abs(share - expected) < 0.05, $"top-1 share {share}, expected {expected}");

        // top_p below the top token's mass keeps only the top token.
        var p1 = engine.Generate(Enumerable.Repeat((IReadOnlyList<int>)prompt, 50).ToList(),
            new SamplingOptions { MaxNewTokens = 1, Seed = 9, TopP = top2[0].p * 0.5 });
        Assert.All(p1, d => Assert.Equal(top2[0].i, d.CompletionIds[0]));
    }

    [Fact]
    public void Bad_options_are_rejected_by_name()
    {
        using var model = Model();
        var engine = new RolloutEngine(model, Tok);
        Assert.Contains("temperature", Assert.Throws<ArgumentException>(() => engine.Generate(["a"], new SamplingOptions { Temperature = -1 })).Message);
        Assert.Contains("top_p", Assert.Throws<ArgumentException>(() => engine.Generate(["a"], new SamplingOptions { TopP = 0 })).Message);
        Assert.Contains("max_position_embeddings", Assert.Throws<ArgumentException>(() => engine.Generate(["a"], new SamplingOptions { MaxNewTokens = 100 })).Message);
    }
}
