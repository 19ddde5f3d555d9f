using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tests.Models;
using Sharpen.Tokenizers;
using Sharpen.Training;
using Sharpen.Training.Sft;

namespace Sharpen.Tests.Training;

/// <summary>C-RLFT (class-conditioned SFT) as options of the SFT trainer.</summary>
public class CrlftTests
{
    static readonly CharTokenizer Tok = CharTokenizer.Create("abcdGT:> ");

    static CausalLM Model(long seed = 1) => new(CausalLMTests.Tiny() with { VocabSize = Tok.VocabSize, MaxPositionEmbeddings = 32 }, seed);

    // Expert class "gpt4" (weight 1, prefix "G> "), sub-optimal "gpt3" (weight 0.1, prefix "T> ").
    static SftOptions Crlft(int batchSize = 8) => new()
    {
        BatchSize = batchSize, ClassWeights = new() { ["gpt4"] = 1.0, ["gpt3"] = 0.1 },
        ClassPrefixes = new() { ["gpt4"] = "G> ", ["gpt3"] = "T> " },
    };

    static SftExample Row(string prompt, string completion, string source) => new(prompt, completion, new Dictionary<string, string> { ["source"] = source });

    static List<SftExample> Rows() =>
        [Row("ab", "cd", "gpt4"), Row("ba", "c", "gpt3"), Row("a", "dda", "gpt4"), Row("b", "ab", "gpt3"), Row("cc", "d", "gpt3")];

    [Fact]
    public void The_loss_is_the_class_weighted_log_likelihood_of_the_prefixed_prompts_over_the_unweighted_token_count()
    {
        using var model = Model();
        var rows = Rows();
        // By hand, example by example: each prompt gets its class's prefix, each completion ends with EOS, and
        // loss = −Σ_i w_i Σ_t log π(y_t) / Σ_i T_i.
        double weighted = 0, tokens = 0;
        foreach (var e in rows)
        {
            var (prefix, w) = e.Fields["source"] == "gpt4" ? ("G> ", 1.0) : ("T> ", 0.1);
            IReadOnlyList<int> p = Tok.Encode(prefix + e.Prompt).ToArray();
            IReadOnlyList<int> c = Tok.Encode(e.Completion, addSpecialTokens: false).Append(Tok.EosTokenId!.Value).ToArray();
            var lp = Scoring.Score(model, [p], [c], Tok.PadTokenId ?? 0)[0];
            weighted += w * lp.Sum(x => (double)x);
            tokens += c.Count;
        }
        Assert.Equal(rows.Sum(e => e.Completion.Length + 1), tokens);
        model.zero_grad();
        var (loss, n) = new SftTrainer(model, Tok, Crlft()).Backward(rows);
        Assert.Equal(tokens, n);
        Assert.Equal(-weighted / tokens, loss, 5);
    }

    [Fact]
    public void Micro_batches_give_the_gradient_of_the_whole_weighted_batch()
    {
        using var model = Model();
        var rows = Rows();
        model.zero_grad();
        var (lossBig, _) = new SftTrainer(model, Tok, Crlft(batchSize: 5)).Backward(rows);
        var gradBig = model.parameters().Select(p => p.grad!.clone().contiguous().data<float>().ToArray()).ToList();
        model.zero_grad();
        var (lossSmall, _) = new SftTrainer(model, Tok, Crlft(batchSize: 2)).Backward(rows);   // micro-batches of 2, 2, 1
        var gradSmall = model.parameters().Select(p => p.grad!.contiguous().data<float>().ToArray()).ToList();
        Assert.True(Math.Abs(lossBig - lossSmall) < 1e-6, $"{lossBig} vs {lossSmall}");
        for (int i = 0; i < gradBig.Count; i++)
            for (int j = 0; j < gradBig[i].Length; j++)
                Assert.True(Math.Abs(gradBig[i][j] - gradSmall[i][j]) < 1e-6, $"param {i} element {j}: {gradBig[i][j]} vs {gradSmall[i][j]}");
    }

    [Fact]
    public void A_weight_zero_class_adds_tokens_to_the_normaliser_but_nothing_to_the_gradient()
    {
        using var model = Model();
        var expert = Rows().Where(e => e.Fields["source"] == "gpt4").ToList();   // 3 + 4 = 7 tokens
        var o = Crlft() with { ClassWeights = new() { ["gpt4"] = 1.0, ["gpt3"] = 0.0 } };
        model.zero_grad();
        var (_, nExpert) = new SftTrainer(model, Tok, o).Backward(expert);
        var gExpert = model.parameters().Select(p => p.grad!.clone().contiguous().data<float>().ToArray()).ToList();
        model.zero_grad();
        var (_, nAll) = new SftTrainer(model, Tok, o).Backward(Rows());           // + 2 + 3 + 2 = 14 tokens
        var gAll = model.parameters().Select(p => p.grad!.contiguous().data<float>().ToArray()).ToList();
        Assert.Equal((7.0, 14.0), (nExpert, nAll));
        // Same numerator, normaliser 14 instead of 7: the gradient halves.
        for (int i = 0; i < gAll.Count; i++)
            for (int j = 0; j < gAll[i].Length; j++)
                Assert.True(Math.Abs(gAll[i][j] * 14 - gExpert[i][j] * 7) < 1e-5, $"param {i} element {j}");
    }

    [Fact]
    public void Generation_conditions_on_the_expert_prefix_and_unknown_classes_are_errors()
    {
        var o = Crlft();
        Assert.Equal("gpt4", o.ExpertClass());
        var problems = SftTrainer.ConditionOnExpert([new Problem("1", "ab", "c", new Dictionary<string, string>())], o);
        Assert.Equal("G> ab", problems[0].Prompt);
        Assert.Equal(("T> ba", 0.1), SftTrainer.Condition(Row("ba", "c", "gpt3"), o));
        Assert.Equal(("ba", 1.0), SftTrainer.Condition(Row("ba", "c", "gpt3"), new SftOptions()));   // C-RLFT off: plain SFT
        var e = Assert.Throws<ArgumentException>(() => SftTrainer.Condition(Row("ba", "c", "human"), o));
        Assert.Contains("unknown class \"human\"", e.Message);
        Assert.Contains("gpt3, gpt4", e.Message);
    }

    [Fact]
    public void The_loader_names_file_line_and_the_known_classes()
    {
        using var dir = new TempDir();
        File.WriteAllLines(dir.File("d.jsonl"),
        [
            """{"prompt": "ab", "completion": "cd", "source": "gpt4"}""",
            """{"prompt": "ab", "completion": "cd", "source": "human"}""",
            """{"prompt": "ab", "completion": "cd"}""",
        ]);
        var e = Assert.Throws<DatasetFormatException>(() => ClassConditionedData.LoadSft(dir.File("d.jsonl"), "source", ["gpt4", "gpt3"]));
        Assert.Contains("d.jsonl:2", e.Message);
        Assert.Contains("unknown class \"human\" in \"source\"; known classes: \"gpt3\", \"gpt4\"", e.Message);
        var skipped = ClassConditionedData.LoadSft(dir.File("d.jsonl"), "source", ["gpt4", "gpt3"], skipBadLines: true);
        Assert.Single(skipped.Items);
        Assert.Equal(2, skipped.SkippedLines);
        Assert.Contains("d.jsonl:3", skipped.Errors[1]);
        Assert.Contains("\"source\" (the row's class) is missing", skipped.Errors[1]);
    }

    [Fact]
    public void Bad_class_options_name_the_recipe_key()
    {
        string Message(SftOptions o) => Assert.Throws<ArgumentException>(() => o.Validate()).Message;
        Assert.Contains("sft.class_prefixes has no prefix for class 'gpt3'", Message(Crlft() with { ClassPrefixes = new() { ["gpt4"] = "G> " } }));
        Assert.Contains("sft.class_weights.gpt3", Message(Crlft() with { ClassWeights = new() { ["gpt4"] = 1, ["gpt3"] = -1 } }));
        Assert.Contains("sft.class_prefixes must differ", Message(Crlft() with { ClassPrefixes = new() { ["gpt4"] = "X", ["gpt3"] = "X" } }));
        Assert.Contains("sft.class_prefixes needs sft.class_weights", Message(new SftOptions { ClassPrefixes = new() { ["a"] = "A" } }));
    }
}
