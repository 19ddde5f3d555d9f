using System.CommandLine;
using System.Text.Json.Nodes;
using Sharpen.Generation;

namespace Sharpen.Cli.Commands;

/// <summary>The <c>--engine NAME</c> and <c>--engine-option key=value</c> flags of train, eval and generate.</summary>
public sealed class EngineFlags
{
    /// <summary><c>--engine</c>.</summary>
    public Option<string?> Engine { get; } = new("--engine")
    {
        Description = "Rollout engine: torch (built in), llamacpp (llama.cpp in process, weights by GGUF export) or openai (an OpenAI-compatible server; give --engine-option base_url=... model=...)",
    };
    /// <summary><c>--engine-option</c>.</summary>
    public Option<string[]> Options { get; } = new("--engine-option")
    {
        Description = "An engine option as key=value (repeatable), the keys of a recipe's rollout section: threads, dtype, context, base_url, model, kv_budget, tis, tis_cap, ...",
        AllowMultipleArgumentsPerToken = false,
    };

    /// <summary>Adds both flags to <paramref name="cmd"/>.</summary>
    public void AddTo(Command cmd) { cmd.Options.Add(Engine); cmd.Options.Add(Options); }

    /// <summary>The flags as a <c>rollout</c> section on top of <paramref name="recipeSection"/> (whose engine-specific keys are
    /// dropped when <c>--engine</c> names another engine); null when neither flag was given.</summary>
    public JsonObject? Section(ParseResult pr, JsonObject? recipeSection = null)
    {
        var name = pr.GetValue(Engine);
        var pairs = pr.GetValue(Options) ?? [];
        if (name is null && pairs.Length == 0) return null;
        var section = recipeSection?.DeepClone().AsObject() ?? new JsonObject();
        if (name is not null)
        {
            var before = section["engine"] is JsonValue v && v.TryGetValue(out string? e) ? e : "torch";
            if (before != name)
                foreach (var key in section.Select(kv => kv.Key).Where(k => !RolloutSpec.CommonKeys.Contains(k)).ToList()) section.Remove(key);
            section["engine"] = name;
        }
        foreach (var (k, val) in RolloutOptionText.Parse(pairs)) section[k] = val?.DeepClone();
        return section;
    }

    /// <summary>The flags read as a <see cref="RolloutSpec"/> (the torch engine when neither was given).</summary>
    public RolloutSpec Spec(ParseResult pr) => RolloutSpec.Parse(Section(pr));
}
