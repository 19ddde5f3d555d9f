using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;
using Sharpen.Data;

namespace Sharpen.Training;

/// <summary>
/// Resumable training checkpoints: <c>checkpoints/step-NNNNNNN/</c> holding a Hugging Face model
/// folder plus <c>optimizer.bin</c> and <c>trainer_state.json</c>. Each is written into a
/// temporary folder and renamed into place, so a crash leaves either the old set or the new one;
/// only the last K are kept.
/// </summary>
public static class TrainingCheckpoint
{
    const string Prefix = "step-";

    /// <summary>Writes checkpoint <paramref name="step"/> under <paramref name="root"/> and prunes old ones; <paramref name="extra"/> adds files to the folder before it is renamed into place. Returns its folder.</summary>
    public static string Save(string root, int step, CausalLM model, ITokenizer tokenizer, optim.Optimizer optimizer,
        JsonObject state, int keep, ScalarHead? head = null, Action<string>? extra = null)
    {
        Directory.CreateDirectory(root);
        var final = Path.Combine(root, $"{Prefix}{step:D7}");
        var tmp = Path.Combine(root, $".tmp-{Prefix}{step:D7}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(tmp);
        HfCheckpoint.Save(tmp, model, tokenizer, head);
        ((TorchSharp.Modules.OptimizerHelper)optimizer).save_state_dict(Path.Combine(tmp, "optimizer.bin"));
        state["step"] = step;
        extra?.Invoke(tmp);   // more files (reference model, critic) that belong to the same checkpoint
        File.WriteAllText(Path.Combine(tmp, "trainer_state.json"), state.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        if (Directory.Exists(final)) Directory.Delete(final, recursive: true);
        Directory.Move(tmp, final);
        foreach (var old in List(root).SkipLast(keep)) Directory.Delete(old, recursive: true);
        foreach (var stale in Directory.EnumerateDirectories(root, ".tmp-*")) Directory.Delete(stale, recursive: true);
        return final;
    }

    /// <summary>Complete checkpoint folders under <paramref name="root"/>, oldest first.</summary>
    public static IReadOnlyList<string> List(string root) => Directory.Exists(root)
        ? Directory.EnumerateDirectories(root, Prefix + "*")
            .Where(d => File.Exists(Path.Combine(d, "trainer_state.json")))
            .OrderBy(d => d, StringComparer.Ordinal).ToList()
        : [];

    /// <summary>The newest complete checkpoint, or null.</summary>
    public static string? Latest(string root) => List(root).LastOrDefault();

    /// <summary>
    /// The resume step of the trainers that walk their data in <see cref="DataOrder"/> (state keys <c>step</c>, <c>epoch</c>,
    /// <c>position</c>): restores the newest checkpoint under <paramref name="root"/> into <paramref name="model"/> (and
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
        var result = (Int("step"), Int("epoch"), Int("position"));
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
