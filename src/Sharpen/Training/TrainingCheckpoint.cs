using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;
using Sharpen.Data;

namespace Sharpen.Training;

/// <summary>
/// Resumable training checkpoints: <c>checkpoints/checkpoint-N/</c> (transformers' name; folders named <c>step-NNNNNNN</c>
/// by earlier versions are still read) holding a Hugging Face model folder plus <c>optimizer.bin</c> and
/// <c>trainer_state.json</c>. The state holds the trainer's own resume keys (<c>step</c>, <c>data_epoch</c> = completed passes
/// over the data, <c>position</c>, ...; <c>epoch</c> is the fraction of passes, as transformers writes it) and transformers' <c>global_step</c>, <c>log_history</c> (the metrics.jsonl rows up
/// to this step, <c>lr</c> also as <c>learning_rate</c>) and <c>best_model_checkpoint</c> (null: no metric picks a best).
/// Each is written into a temporary folder and renamed into place, so a crash leaves either the old set or the new one;
/// only the last K are kept.
/// </summary>
public static class TrainingCheckpoint
{
    const string Prefix = "checkpoint-";
    const string OldPrefix = "step-";

    /// <summary>Writes checkpoint <paramref name="step"/> under <paramref name="root"/> and prunes old ones; <paramref name="extra"/> adds files to the folder before it is renamed into place. Returns its folder.</summary>
    public static string Save(string root, int step, CausalLM model, ITokenizer tokenizer, optim.Optimizer optimizer,
        JsonObject state, int keep, ScalarHead? head = null, Action<string>? extra = null)
    {
        Directory.CreateDirectory(root);
        var final = Path.Combine(root, $"{Prefix}{step}");
        var tmp = Path.Combine(root, $".tmp-{Prefix}{step}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        HfCheckpoint.Save(tmp, model, tokenizer, head);
        ((TorchSharp.Modules.OptimizerHelper)optimizer).save_state_dict(Path.Combine(tmp, "optimizer.bin"));
        state["step"] = step;
        state["global_step"] = step;
        state["best_model_checkpoint"] = null;
        state["log_history"] = LogHistory(Path.GetDirectoryName(Path.GetFullPath(root))!, step);
        extra?.Invoke(tmp);   // more files (reference model, critic) that belong to the same checkpoint
        File.WriteAllText(Path.Combine(tmp, "trainer_state.json"), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        var legacy = Path.Combine(root, $"{OldPrefix}{step:D7}");
        if (Directory.Exists(legacy)) Directory.Delete(legacy, recursive: true);
        Directory.Move(tmp, final);
        foreach (var old in List(root).SkipLast(keep)) Directory.Delete(old, recursive: true);
        foreach (var stale in Directory.EnumerateDirectories(root, ".tmp-*")) Directory.Delete(stale, recursive: true);
        return final;
    }

    /// <summary>Complete checkpoint folders under <paramref name="root"/> (<c>checkpoint-N</c> and the older <c>step-NNNNNNN</c>), by step, oldest first.</summary>
    public static IReadOnlyList<string> List(string root) => Directory.Exists(root)
        ? Directory.EnumerateDirectories(root)
            .Select(d => (Dir: d, Step: StepOf(Path.GetFileName(d))))
            .Where(x => x.Step is not null && File.Exists(Path.Combine(x.Dir, "trainer_state.json")))
            .OrderBy(x => x.Step).ThenBy(x => x.Dir, StringComparer.Ordinal).Select(x => x.Dir).ToList()
        : [];

    /// <summary>The step in a checkpoint folder's name, or null when it is not one.</summary>
    static int? StepOf(string name)
    {
        foreach (var p in new[] { Prefix, OldPrefix })
            if (name.StartsWith(p, StringComparison.Ordinal) && int.TryParse(name.AsSpan(p.Length), System.Globalization.NumberStyles.None,
                    System.Globalization.CultureInfo.InvariantCulture, out var n)) return n;
        return null;
    }

    /// <summary>transformers' <c>log_history</c>: the rows of <c>outDir/metrics.jsonl</c> up to <paramref name="step"/>.</summary>
    static JsonArray LogHistory(string outDir, int step)
    {
        var history = new JsonArray();
        if (!File.Exists(Path.Combine(outDir, "metrics.jsonl"))) return history;
        foreach (var row in new RunLog(outDir, append: true).ReadMetrics())
        {
            long at = row["step"] is JsonValue s && s.TryGetValue(out long a) ? a : row["iteration"] is JsonValue i && i.TryGetValue(out long b) ? b : 0;
            if (at > step) continue;
            var entry = (JsonObject)row.DeepClone();
            entry["step"] = at;
            if (entry["lr"] is { } lr && !entry.ContainsKey("learning_rate")) entry["learning_rate"] = lr.DeepClone();
            history.Add(entry);
        }
        return history;
    }

    /// <summary>The newest complete checkpoint, or null.</summary>
    public static string? Latest(string root) => List(root).LastOrDefault();

    /// <summary>
    /// The resume step of the trainers that walk their data in <see cref="DataOrder"/> (state keys <c>step</c>, <c>data_epoch</c>
    /// (or, in older checkpoints, an integer <c>epoch</c>), <c>position</c>): restores the newest checkpoint under <paramref name="root"/> into <paramref name="model"/> (and
    /// <paramref name="head"/>) and <paramref name="optimizer"/>, drops the metrics rows after its step, and returns
    /// (step, epoch, position); (0, 0, 0) when there is no checkpoint yet.
    /// </summary>
    public static (int Step, int Epoch, int Position) Resume(string root, CausalLM model, optim.Optimizer optimizer, RunLog runLog,
        Action<string>? log, ScalarHead? head = null)
    {
        var latest = Latest(root);
        if (latest is null)
        {
            // Rows an earlier attempt logged before its first checkpoint are redone from step 1: drop them, so no step appears twice.
            runLog.TruncateAfter(0);
            log?.Invoke($"no checkpoint under {root}; starting from scratch");
            return (0, 0, 0);
        }
        var state = Restore(latest, model, optimizer, head);
        int Int(string k) => state[k]?.GetValue<int>() ?? throw new CheckpointException($"{latest}/trainer_state.json: missing '{k}'");
        // data_epoch: completed passes (epoch is the fraction transformers writes); checkpoints before it stored the count in epoch.
        var result = (Int("step"), state.ContainsKey("data_epoch") ? Int("data_epoch") : Int("epoch"), Int("position"));
        runLog.TruncateAfter(result.Item1);
        log?.Invoke($"resumed from {latest} at step {result.Item1}");
        return result;
    }

    /// <summary>Loads weights and optimizer state into existing objects and returns the trainer state.</summary>
    public static JsonObject Restore(string dir, CausalLM model, optim.Optimizer optimizer, ScalarHead? head = null)
    {
        // A LoRA model's base weights are frozen and come from where the run started: only its adapters are restored, and
        // the merged model file is read only when a head is to come from it.
        if (model.Lora is not null) HfCheckpoint.LoadAdapter(Path.Combine(dir, HfCheckpoint.AdapterFolder), model);
        if (model.Lora is null || head is not null)
        {
            var loaded = HfCheckpoint.Load(dir);
            using (loaded.Model)
            {
                if (model.Lora is null)
                    model.LoadWeights(loaded.Model.Weights().ToDictionary(w => w.Name, w => w.Tensor), Path.Combine(dir, HfCheckpoint.WeightsFile));
                if (head is not null)
                {
                    if (loaded.Head is null) throw new CheckpointException($"{dir}: expected {ScalarHead.FileName}");
                    using var _ = no_grad();
                    var src = loaded.Head.named_parameters().ToDictionary(p => p.name, p => p.parameter);
                    foreach (var (name, p) in head.named_parameters()) p.copy_(src[name]);
                }
            }
        }
        ((TorchSharp.Modules.OptimizerHelper)optimizer).load_state_dict(Path.Combine(dir, "optimizer.bin"));
        var statePath = Path.Combine(dir, "trainer_state.json");
        return JsonNode.Parse(File.ReadAllText(statePath)) as JsonObject
               ?? throw new CheckpointException($"{statePath}: expected a JSON object");
    }
}
