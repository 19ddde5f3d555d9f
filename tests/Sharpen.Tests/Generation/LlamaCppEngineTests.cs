using Sharpen.Generation;
using Sharpen.LlamaCpp;
using Sharpen.Models;
using Sharpen.Tests.Export;
using Sharpen.Tokenizers;

namespace Sharpen.Tests.Generation;

/// <summary>The llama.cpp engine against the torch engine and the trainer's teacher-forced log-probs on the same weights.</summary>
public class LlamaCppEngineTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcdefghijk +=0123456789");
    static readonly string[] Prompts = ["abc", "hello", "k", "badge jab 12+3=", "abc"];

    static CausalLM Model(long seed, int[]? eos = null) => LlamaCppOracle.Randomize(new CausalLM(new ModelConfig
    {
        ModelType = "llama", VocabSize = Tok.VocabSize, HiddenSize = 64, IntermediateSize = 96, NumHiddenLayers = 2,
        NumAttentionHeads = 4, NumKeyValueHeads = 2, MaxPositionEmbeddings = 128, EosTokenIds = eos ?? [CharTokenizer.EosId],
    }, seed), seed + 100, scale: 0.15);

    static void AssertLogProbsMatchTeacherForcing(CausalLM model, IReadOnlyList<Rollout> rollouts, double tol = 1e-3)
    {
        var scored = Scoring.Score(model, rollouts.Select(r => (IReadOnlyList<int>)r.PromptIds).ToList(),
            rollouts.Select(r => (IReadOnlyList<int>)r.CompletionIds).ToList(), CharTokenizer.PadId);
        for (int i = 0; i < rollouts.Count; i++)
        {
            Assert.Equal(scored[i].Length, rollouts[i].LogProbs.Length);
            for (int t = 0; t < scored[i].Length; t++)
                Assert.True(Math.Abs(scored[i][t] - rollouts[i].LogProbs[t]) < tol,
                    $"rollout {i} token {t}: engine {rollouts[i].LogProbs[t]}, trainer {scored[i][t]}");
        }
    }

    [Fact]
    public void Greedy_rollouts_equal_the_torch_engine_and_log_probs_equal_teacher_forcing()
    {
        using var model = Model(1);
        using var engine = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 2 });
        var torch = new RolloutEngine(model, Tok);
        foreach (var o in new[]
        {
            new SamplingOptions { Temperature = 0, MaxNewTokens = 16, StopAtEos = false },
            new SamplingOptions { Temperature = 0, MaxNewTokens = 12, SamplesPerPrompt = 3, StopStrings = ["ab"] },
        })
        {
            var ours = engine.Generate(Prompts, o);
            var theirs = torch.Generate(Prompts, o);
            Assert.Equal(theirs.Count, ours.Count);
            for (int i = 0; i < ours.Count; i++)
            {
                Assert.Equal((theirs[i].PromptIndex, theirs[i].SampleIndex), (ours[i].PromptIndex, ours[i].SampleIndex));
                Assert.Equal(theirs[i].CompletionIds, ours[i].CompletionIds);
                Assert.Equal(theirs[i].Stop, ours[i].Stop);
                Assert.Equal(theirs[i].CompletionText, ours[i].CompletionText);
            }
            AssertLogProbsMatchTeacherForcing(model, ours);
        }
    }

    [Fact]
    public void Sampled_parallel_sequences_keep_their_own_histories()
    {
        using var model = Model(2);
        using var engine = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 2 });
        var o = new SamplingOptions { Temperature = 1.0, MaxNewTokens = 20, SamplesPerPrompt = 6, StopAtEos = false, Seed = 5 };
        var a = engine.Generate(Prompts, o);
        Assert.Equal(Prompts.Length * 6, a.Count);
        Assert.True(a.Select(r => string.Join(",", r.CompletionIds)).Distinct().Count() > Prompts.Length, "samples did not diverge");
        // Each sampled sequence's log-probs are the trainer's on that sequence: the shared prompt cells and the batching
        // never mixed two sequences' histories.
        AssertLogProbsMatchTeacherForcing(model, a);
        // Same seed, same samples; top_k = 1 is greedy.
        Assert.Equal(a.Select(r => r.CompletionIds), engine.Generate(Prompts, o).Select(r => r.CompletionIds));
        var top1 = engine.Generate(Prompts, o with { TopK = 1, SamplesPerPrompt = 1 });
        var greedy = engine.Generate(Prompts, o with { Temperature = 0, SamplesPerPrompt = 1 });
        Assert.Equal(greedy.Select(r => r.CompletionIds), top1.Select(r => r.CompletionIds));
    }

    [Fact]
    public void Small_contexts_run_a_request_in_rounds_with_the_same_result()
    {
        using var model = Model(3);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 10, SamplesPerPrompt = 2, StopAtEos = false };
        using var big = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 2 });
        // 64 cells, 4 sequences, 8 tokens per decode call. Every sample has its own cells (prompt + 10 new): the rounds are
        // {abc, hello} (4 sequences × 16 cells, <bos> included), {k} (k + badge would be 4 × 26 = 104 cells), {badge…} (2 × 26), {abc}.
        using var small = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 2, ContextSize = 64, MaxSequences = 4, BatchSize = 8 });
        Assert.Equal(big.Generate(Prompts, o).Select(r => r.CompletionIds), small.Generate(Prompts, o).Select(r => r.CompletionIds));
        // The context is made for what a round needs (cells per sequence in blocks of 32) and reused by smaller rounds:
        // the first round's 4 × 32; the big engine's one round of 10 sequences × 32 (the longest prompt, 16, + 10).
        Assert.Equal((4, 32), small.ContextShape);
        Assert.Equal((10, 32), big.ContextShape);
        var tooLong = new SamplingOptions { Temperature = 0, MaxNewTokens = 40, SamplesPerPrompt = 2 };
        Assert.Contains("context_size", Assert.Throws<ArgumentException>(() => small.Generate(Prompts, tooLong)).Message);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void SyncWeights_makes_the_engine_follow_changed_weights(bool inPlace)
    {
        using var model = Model(4);
        using var engine = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 2, InPlaceSync = inPlace });
        var torch = new RolloutEngine(model, Tok);
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 16, StopAtEos = false };
        var before = torch.Generate(Prompts, o).Select(r => r.CompletionIds).ToList();
        Assert.Equal(before, engine.Generate(Prompts, o).Select(r => r.CompletionIds));
        var oldFile = engine.ModelPath;

        LlamaCppOracle.Randomize(model, seed: 77, scale: 0.15);
        var after = torch.Generate(Prompts, o).Select(r => r.CompletionIds).ToList();
        Assert.NotEqual(before, after);
        Assert.Equal(before, engine.Generate(Prompts, o).Select(r => r.CompletionIds));   // still the old weights

        engine.SyncWeights(model);
        var synced = engine.Generate(Prompts, o);
        Assert.Equal(after, synced.Select(r => r.CompletionIds));
        AssertLogProbsMatchTeacherForcing(model, synced);
        Assert.True(File.Exists(engine.ModelPath));
        if (inPlace)
        {
            // The new bytes went over the mapped file: same file, same model and context (created once), no reload.
            Assert.Equal(oldFile, engine.ModelPath);
            Assert.Equal((1, 1, 1), (engine.Timings.InPlaceSyncs, engine.Timings.Reloads, engine.Timings.Contexts));
        }
        else
        {
            Assert.False(File.Exists(oldFile));
            Assert.Equal((0, 2, 2), (engine.Timings.InPlaceSyncs, engine.Timings.Reloads, engine.Timings.Contexts));
        }
    }

    [Fact]
    public void In_place_sync_follows_f16_weights_and_q8_0_reloads()
    {
        foreach (var dtype in new[] { Sharpen.Export.GgufDType.F16, Sharpen.Export.GgufDType.Q8_0 })
        {
            using var model = Model(6);
            using var engine = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 2, DType = dtype });
            var o = new SamplingOptions { Temperature = 0, MaxNewTokens = 12, StopAtEos = false };
            LlamaCppOracle.Randomize(model, seed: 78, scale: 0.15);
            engine.SyncWeights(model);
            // A fresh engine loads the new weights from scratch: the synced one must generate exactly what it generates.
            using var fresh = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 2, DType = dtype });
            var a = engine.Generate(Prompts, o);
            var b = fresh.Generate(Prompts, o);
            Assert.Equal(b.Select(r => r.CompletionIds), a.Select(r => r.CompletionIds));
            Assert.Equal(b.SelectMany(r => r.LogProbs), a.SelectMany(r => r.LogProbs));
            Assert.Equal(dtype == Sharpen.Export.GgufDType.F16 ? 1 : 0, engine.Timings.InPlaceSyncs);
        }
    }

    [Fact]
    public void Sequences_that_stop_at_different_steps_keep_their_histories_when_streams_are_compacted()
    {
        // EOS is a common letter, so that the 8 samples of each prompt stop at many different steps and the live streams are
        // compacted (the highest live stream copied into a stopped one's) again and again; each log-prob must still be the
        // trainer's on that sequence's own history.
        using var model = Model(7, eos: [Tok.Encode("e")[0]]);
        using var engine = new LlamaCppEngine(model, Tok, new LlamaCppOptions { Threads = 2 });
        var o = new SamplingOptions { Temperature = 1.5, MaxNewTokens = 24, SamplesPerPrompt = 8, Seed = 11 };
        var ro = engine.Generate(Prompts, o);
        var lengths = ro.Where(r => r.Stop == StopReason.Eos).Select(r => r.CompletionIds.Length).Distinct().Count();
        Assert.True(lengths >= 5, $"only {lengths} distinct stop steps");
        Assert.Contains(ro, r => r.Stop == StopReason.MaxTokens);
        AssertLogProbsMatchTeacherForcing(model, ro);
        Assert.Equal(ro.Select(r => r.CompletionIds), engine.Generate(Prompts, o).Select(r => r.CompletionIds));   // same seed, same samples
    }
}
