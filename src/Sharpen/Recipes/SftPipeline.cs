using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tasks;
using Sharpen.Tokenizers;
using Sharpen.Evaluation;
using Sharpen.Training;
using Sharpen.Training.Sft;

namespace Sharpen.Recipes;

/// <summary>What a recipe run produced.</summary>
public sealed record PipelineResult(SftResult Sft, EvalResult? Eval, IVerifiableTask? Task, IReadOnlyList<Problem> TestProblems,
    long Parameters, int TrainExamples, int SkippedLines, double Seconds);

/// <summary>
/// Runs an SFT recipe end to end: data (files or generated from the task), model (checkpoint or
/// fresh), <see cref="SftTrainer"/>, then a held-out evaluation added to summary.json.
/// </summary>
public static class SftPipeline
{
    /// <summary>Runs <paramref name="recipe"/>; <paramref name="log"/> receives progress lines.</summary>
    public static PipelineResult Run(Recipe recipe, Action<string>? log = null, bool resume = false, CancellationToken cancel = default)
    {
        var sw = Stopwatch.StartNew();
        Directory.CreateDirectory(recipe.Output);
        var task = recipe.Task?.Build("recipe");

        // Data.
        IReadOnlyList<SftExample> train, test;
        int skipped = 0;
        if (recipe.Data.Train is { } trainPath)
        {
            train = LoadRows(trainPath, recipe, ref skipped, log);
            test = recipe.Data.Test is { } testPath ? LoadRows(testPath, recipe, ref skipped, log) : [];
        }
        else
        {
            var made = DatasetWriter.MakeDataset(task!, recipe.Data.TrainProblems + recipe.Data.TestProblems, recipe.Seed,
                Path.Combine(recipe.Output, "data", $"{task!.Name}.jsonl"), recipe.Data.TestProblems);
            train = JsonlDataset.LoadSft(made.Files[0]).Items;
            test = JsonlDataset.LoadSft(made.Files[1]).Items;
            if (recipe.Data.Test is { } testPath) test = LoadRows(testPath, recipe, ref skipped, log);
        }
        log?.Invoke($"data: {train.Count} training examples, {test.Count} held-out");
        var testProblems = task is null ? [] : test.Select(ToProblem).ToList();

        // Model.
        var (model, tokenizer) = LoadPolicy(recipe, task);
        using var _ = model;
        log?.Invoke($"model: {model.ParameterCount():N0} parameters ({model.Config.ModelType}, d={model.Config.HiddenSize}, {model.Config.NumHiddenLayers} layers)");

        // Train.
        var sft = new SftTrainer(model, tokenizer, recipe.Sft) { Log = log, Task = task, EvalProblems = testProblems }
            .Run(train, test, recipe.Output, resume, cancel);

        // Evaluate on held-out problems and add the numbers to summary.json.
        EvalResult? eval = null;
        var runLog = new RunLog(recipe.Output, append: true);
        var summary = runLog.ReadSummary();
        if (task is not null && testProblems.Count > 0)
        {
            eval = Evaluator.Run(new RolloutEngine(model, tokenizer), task, SftTrainer.ConditionOnExpert(testProblems, recipe.Sft).Take(recipe.Eval.Problems).ToList(),
                recipe.Eval.Samples, recipe.Eval.Temperature, recipe.Eval.MaxNewTokens, recipe.Seed);
            foreach (var (k, v) in eval.ToJson()) summary[k] = v?.DeepClone();
            log?.Invoke($"held-out: accuracy {eval.Accuracy:P1}, pass@{eval.Samples} {eval.PassAtK:P1}, maj@{eval.Samples} {eval.MajAtK:P1} (n={eval.N})");
        }
        summary["parameters"] = model.ParameterCount();
        summary["skipped_lines"] = skipped;
        runLog.Summary(summary);
        return new PipelineResult(sft, eval, task, testProblems, model.ParameterCount(), train.Count, skipped, sw.Elapsed.TotalSeconds);
    }

    /// <summary>The recipe's policy: a checkpoint folder (with its tokenizer) or a fresh model over the recipe's tokenizer.</summary>
    public static (CausalLM Model, ITokenizer Tokenizer) LoadPolicy(Recipe recipe, IVerifiableTask? task) => LoadPolicyOver(recipe, task?.Alphabet);

    /// <summary>The recipe's policy; <c>model.tokenizer: task</c> is a character tokenizer over <paramref name="alphabet"/>
    /// (a task's or an environment's).</summary>
    public static (CausalLM Model, ITokenizer Tokenizer) LoadPolicyOver(Recipe recipe, string? alphabet)
    {
        CausalLM model;
        ITokenizer tokenizer;
        if (recipe.Model.Path is { } path)
        {
            var loaded = HfCheckpoint.Load(path, requireTokenizer: true);
            (model, tokenizer) = (loaded.Model, loaded.Tokenizer!);
        }
        else
        {
            tokenizer = recipe.Model.Tokenizer == "task"
                ? CharTokenizer.Create(alphabet is { Length: > 0 } ? alphabet : throw new RecipeException("recipe: 'model.tokenizer: task' needs a 'task' or an 'env' with an alphabet"))
                : TokenizerFiles.FromSpec(recipe.Model.Tokenizer);
            model = new CausalLM(FreshConfig(recipe.Model.Init!, tokenizer), recipe.Seed);
        }
        if (recipe.Model.Lora is { } lora) model.AddLora(lora, recipe.Seed);   // the base is frozen; A is seeded, B starts at 0
        return (model, tokenizer);
    }

    static IReadOnlyList<SftExample> LoadRows(string path, Recipe recipe, ref int skipped, Action<string>? log)
    {
        var loaded = (recipe.Sft.ConditionsOnClass()
            ? ClassConditionedData.LoadSft(path, recipe.Sft.ClassField, recipe.Sft.ClassWeights!.Keys, recipe.Data.SkipBadLines)
            : JsonlDataset.LoadSft(path, recipe.Data.SkipBadLines, ChatFormatOf(recipe))).Reported(path, log);
        skipped += loaded.SkippedLines;
        return loaded.Items;
    }

    /// <summary>How the recipe's conversations become text: the chat template of the model folder (or of the tokenizer
    /// folder), else the plain <c>&lt;|role|&gt;</c> format.</summary>
    public static ChatFormat ChatFormatOf(Recipe recipe) =>
        ChatFormat.ForModel(recipe.Model.Path ?? (Directory.Exists(recipe.Model.Tokenizer) ? recipe.Model.Tokenizer : null));

    /// <summary>A model config from a recipe's <c>model.init</c> keys, completed from the tokenizer.</summary>
    public static ModelConfig FreshConfig(JsonObject init, ITokenizer tokenizer)
    {
        var o = (JsonObject)init.DeepClone();
        o["model_type"] ??= "llama";
        o["vocab_size"] ??= tokenizer.VocabSize;
        o["num_key_value_heads"] ??= o["num_attention_heads"]?.DeepClone();
        if (tokenizer.BosTokenId is { } b) o["bos_token_id"] ??= b;
        if (tokenizer.EosTokenId is { } e) o["eos_token_id"] ??= e;
        if (tokenizer.PadTokenId is { } p) o["pad_token_id"] ??= p;
        o["tie_word_embeddings"] ??= true;
        var cfg = ModelConfig.Parse(o.ToJsonString(), "recipe model.init");
        if (cfg.VocabSize < tokenizer.VocabSize)
            throw new RecipeException($"recipe: 'model.init.vocab_size' is {cfg.VocabSize} but the tokenizer has {tokenizer.VocabSize} tokens");
        return cfg;
    }

    /// <summary>A held-out row as a task problem (prompt plus the ground-truth fields written by <c>data make</c>).</summary>
    /// <exception cref="ArgumentException">The row is a <c>{"text"}</c> row, which has no prompt.</exception>
    public static Problem ToProblem(SftExample e) => e.Shape == SftShape.Text
        ? throw new ArgumentException($"a {{\"text\"}} row has no prompt, so it cannot be a problem (\"{(e.Completion.Length > 40 ? e.Completion[..40] + "..." : e.Completion)}\"); give prompt/completion or messages rows")
        : new(e.Fields.GetValueOrDefault("id") ?? e.Prompt, e.Prompt, e.Fields.GetValueOrDefault("answer") ?? "", e.Fields);
}
