using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sharpen.Recipes;

/// <summary>
/// The model card <c>final/README.md</c> a training run leaves beside the weights, as on the Hugging Face Hub: YAML front
/// matter (<c>library_name: sharpen</c>, <c>base_model</c> when the run started from a folder, <c>tags</c>), then how it
/// was trained (kind, command), the recipe or TRL config exactly as given, and the results from summary.json.
/// </summary>
public static class ModelCard
{
    /// <summary>Writes <c>outDir/final/README.md</c> when <c>final/</c> exists; returns its path, or null.</summary>
    public static string? Write(string outDir, Recipe recipe, string command, string? configText)
    {
        var final = Path.Combine(outDir, "final");
        if (!Directory.Exists(final)) return null;
        var summaryPath = Path.Combine(outDir, "summary.json");
        var summary = File.Exists(summaryPath) ? JsonNode.Parse(File.ReadAllText(summaryPath)) as JsonObject : null;
        var sb = new StringBuilder();
        sb.Append("---\nlibrary_name: sharpen\n");
        if (recipe.Model.Path is { } basePath) sb.Append($"base_model: {JsonSerializer.Serialize(basePath)}\n");
        sb.Append($"tags:\n- sharpen\n- {recipe.Kind}\n");
        if (recipe.Model.Lora is not null) sb.Append("- lora\n");
        sb.Append("---\n\n");
        sb.Append($"# {Path.GetFileName(Path.GetFullPath(outDir))}\n\n");
        sb.Append($"Trained with Sharpen (`{recipe.Kind}`): `{command}`.\n");
        sb.Append(recipe.Model.Path is { } p ? $"Started from `{p}`.\n" : "Started from a freshly initialised model (`model.init`).\n");
        if (recipe.Model.Lora is { } lora) sb.Append($"LoRA r={lora.R}, alpha={lora.Alpha}; `adapter/` holds the adapters in PEFT's layout, the folder the merged weights.\n");
        if (configText is not null) sb.Append($"\n## Configuration\n\n```yaml\n{configText.TrimEnd()}\n```\n");
        if (summary is not null)
        {
            sb.Append("\n## Results\n\n| key | value |\n| --- | --- |\n");
            foreach (var (k, v) in summary)
                if (v is JsonValue) sb.Append($"| {k} | {v.ToJsonString().Trim('"').Replace("|", "\\|")} |\n");
        }
        sb.Append("\nTraining curves: `metrics.jsonl` and the TensorBoard event file in the run folder; checkpoints under `checkpoints/`.\n");
        var path = Path.Combine(final, "README.md");
        Checkpoints.AtomicFile.WriteAllText(path, sb.ToString());
        return path;
    }
}
