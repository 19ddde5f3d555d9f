using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Generation;

/// <summary>
/// The <c>rollout:</c> settings of a run: which engine generates the rollouts, its options, and how the trainer corrects
/// for the engine's log-probs differing from its own (truncated importance sampling, Yao et al. 2025).
/// </summary>
public sealed record RolloutSpec
{
    /// <summary>Engine name (<see cref="RolloutEngines.Names"/>): <c>torch</c> (default), <c>llamacpp</c>, <c>openai</c>.</summary>
    public string Engine { get; init; } = "torch";
    /// <summary>The engine's own keys as written (e.g. <c>threads</c>, <c>base_url</c>, <c>kv_budget</c>).</summary>
    public JsonObject Options { get; init; } = new();
    /// <summary>Truncated importance sampling on the policy-gradient term; null = on for every engine but <c>torch</c>.</summary>
    public bool? Tis { get; init; }
    /// <summary>C in the weight min(π_trainer_old / π_engine, C). Default 2 (the paper's C).</summary>
    public double TisCap { get; init; } = 2.0;
    /// <summary>One-step asynchronous rollouts: the engine generates iteration k+1's rollouts (with the weights of iteration k)
    /// while the trainer updates on iteration k's, so an iteration costs about the longer of the two instead of their sum.
    /// The rollouts are then one update old; truncated IS (on by default for these engines) corrects for it. Needs an engine
    /// that holds its own copy of the weights (<c>llamacpp</c>, <c>openai</c>) and single-turn prompts.</summary>
    public bool Async { get; init; }

    /// <summary>The keys every engine accepts besides its own.</summary>
    public static IReadOnlyList<string> CommonKeys { get; } = ["engine", "tis", "tis_cap", "async"];

    /// <summary>Whether truncated IS is on: as set, else on for engines other than <c>torch</c>.</summary>
    public bool TisEnabled => Tis ?? Engine != "torch";

    /// <summary>
    /// Reads a <c>rollout:</c> section: <c>engine</c>, <c>tis</c>, <c>tis_cap</c>, and the rest as the engine's options.
    /// Throws <see cref="ArgumentException"/> naming the key for an unknown engine, an unknown key or a mistyped value.
    /// </summary>
    public static RolloutSpec Parse(JsonObject? section)
    {
        if (section is null) return new RolloutSpec();
        var engine = section["engine"] is { } e ? Text(e, "engine") : "torch";
        var kind = RolloutEngines.Get(engine);
        var options = new JsonObject();
        bool? tis = null, overlap = null;
        double cap = 2.0;
        foreach (var (key, value) in section)
        {
            switch (key)
            {
                case "engine": break;
                case "tis": tis = Flag(value, "tis"); break;
                case "tis_cap": cap = Number(value, "tis_cap"); break;
                case "async": overlap = Flag(value, "async"); break;
                default:
                    if (!kind.Keys.Contains(key))
                        throw new ArgumentException($"unknown key 'rollout.{key}' for engine '{engine}'; known keys: {string.Join(", ", CommonKeys.Concat(kind.Keys).Order(StringComparer.Ordinal))}");
                    options[key] = value?.DeepClone();
                    break;
            }
        }
        return new RolloutSpec { Engine = engine, Options = options, Tis = tis, TisCap = cap, Async = overlap ?? false }.Validate();
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad setting.</summary>
    public RolloutSpec Validate()
    {
        var kind = RolloutEngines.Get(Engine);
        foreach (var (key, _) in Options)
            if (!kind.Keys.Contains(key))
                throw new ArgumentException($"unknown key 'rollout.{key}' for engine '{Engine}'; known keys: {string.Join(", ", CommonKeys.Concat(kind.Keys).Order(StringComparer.Ordinal))}");
        if (!(TisCap >= 1) || double.IsInfinity(TisCap)) throw new ArgumentException($"rollout.tis_cap must be a finite number ≥ 1, got {TisCap}");
        if (Async && Engine == "torch")
            throw new ArgumentException("rollout.async overlaps generation with the update, but the torch engine samples the very policy being updated; use engine: llamacpp or openai");
        return this;
    }

    static string Text(JsonNode? v, string key) =>
        v is JsonValue j && j.TryGetValue(out string? s) && !string.IsNullOrWhiteSpace(s) ? s : throw new ArgumentException($"rollout.{key} must be a name, got {v?.ToJsonString() ?? "null"}");

    internal static bool Flag(JsonNode? v, string key) =>
        v is JsonValue j && j.TryGetValue(out bool b) ? b : throw new ArgumentException($"rollout.{key} must be true or false, got {v?.ToJsonString() ?? "null"}");

    internal static double Number(JsonNode? v, string key) =>
        v is JsonValue j && j.GetValueKind() == JsonValueKind.Number ? double.Parse(j.ToJsonString(), CultureInfo.InvariantCulture) : throw new ArgumentException($"rollout.{key} must be a number, got {v?.ToJsonString() ?? "null"}");
}

/// <summary>What an engine factory receives: the policy it generates for (its weights at start), its tokenizer and the options.</summary>
public sealed record RolloutEngineContext(CausalLM Policy, ITokenizer Tokenizer, RolloutEngineOptions Options);

/// <summary>An engine's options (the <c>rollout:</c> keys other than the common ones) with typed getters whose errors name the key.</summary>
public sealed class RolloutEngineOptions(JsonObject values)
{
    /// <summary>Whether the key was given (with any value, null included).</summary>
    public bool Has(string key) => values.ContainsKey(key);

    /// <summary>The integer at <paramref name="key"/>, or null when absent.</summary>
    public int? Int(string key)
    {
        if (values[key] is not { } v) return null;
        double d = RolloutSpec.Number(v, key);
        return d == Math.Floor(d) && d is >= int.MinValue and <= int.MaxValue ? (int)d : throw new ArgumentException($"rollout.{key} must be an integer, got {v.ToJsonString()}");
    }

    /// <summary>The number at <paramref name="key"/>, or null when absent.</summary>
    public double? Double(string key) => values[key] is { } v ? RolloutSpec.Number(v, key) : null;

    /// <summary>true/false at <paramref name="key"/>, or null when absent.</summary>
    public bool? Bool(string key) => values[key] is { } v ? RolloutSpec.Flag(v, key) : null;

    /// <summary>The text at <paramref name="key"/> (numbers as written), or null when absent or null.</summary>
    public string? String(string key) => values[key] switch
    {
        null => null,
        JsonValue j when j.TryGetValue(out string? s) => s,
        JsonValue j when j.GetValueKind() == JsonValueKind.Number => j.ToJsonString(),
        var v => throw new ArgumentException($"rollout.{key} must be text, got {v.ToJsonString()}"),
    };

    /// <summary>The text at <paramref name="key"/>; an error naming the key when absent.</summary>
    public string Required(string key) => String(key) ?? throw new ArgumentException($"rollout.{key} is required for this engine");
}

/// <summary>A registered engine: its name, the option keys it reads, and the factory.</summary>
/// <param name="Name">What <c>rollout.engine</c> says.</param>
/// <param name="Keys">Its option keys (snake_case).</param>
/// <param name="Create">Builds the engine (which may also be <see cref="IDisposable"/>; the caller disposes it).</param>
public sealed record RolloutEngineKind(string Name, IReadOnlyList<string> Keys, Func<RolloutEngineContext, IRolloutEngine> Create);

/// <summary>
/// The rollout engines by name, as recipes, the CLI and library code pick them. <c>torch</c> (the built-in
/// <see cref="RolloutEngine"/>; keys <c>kv_budget</c>, <c>kv_recent</c>, <c>kv_cache_mb</c>) and <c>openai</c> (<see cref="OpenAiEngine"/>) are
/// built in; <c>llamacpp</c> lives in <c>Sharpen.LlamaCpp</c>, which the core library cannot reference, and is added by
/// <c>LlamaCppEngines.Register()</c> (the CLI calls it at start-up).
/// </summary>
public static class RolloutEngines
{
    static readonly Dictionary<string, RolloutEngineKind> Kinds = new(StringComparer.Ordinal);
    static readonly object Gate = new();

    static RolloutEngines()
    {
        Register(new("torch", ["kv_budget", "kv_recent", "kv_cache_mb"], c =>
        {
            double cacheMb = c.Options.Double("kv_cache_mb") ?? RolloutEngine.DefaultKvCacheMegabytes;
            if (!(cacheMb >= 0) || double.IsInfinity(cacheMb)) throw new ArgumentException($"rollout.kv_cache_mb must be ≥ 0 (0 = no limit), got {cacheMb}");
            var engine = new RolloutEngine(c.Policy, c.Tokenizer) { KvCacheMegabytes = cacheMb };
            int? budget = c.Options.Int("kv_budget"), recent = c.Options.Int("kv_recent");
            if (budget is null && recent is null) return engine;
            var probe = new SamplingOptions { KvBudget = budget, KvRecent = recent };
            try { probe.Validate(); }
            catch (ArgumentException e) { throw new ArgumentException($"rollout: {e.Message}", e); }
            return new BudgetedEngine(engine, budget, recent);
        }));
        Register(new("openai", ["base_url", "api_key", "model", "checkpoint_dir", "reload_endpoint", "reload_body", "timeout",
            "prompts_per_request", "concurrency", "prompts_as_token_ids"], c =>
        {
            var o = c.Options;
            var url = o.Required("base_url");
            if (!Uri.TryCreate(url, UriKind.Absolute, out var baseUrl)) throw new ArgumentException($"rollout.base_url must be an http(s) URL, got '{url}'");
            var defaults = new OpenAiEngineOptions { BaseUrl = baseUrl, Model = o.Required("model") };
            double timeout = o.Double("timeout") ?? defaults.Timeout.TotalSeconds;
            if (!(timeout > 0) || double.IsInfinity(timeout)) throw new ArgumentException($"rollout.timeout must be a positive number of seconds, got {timeout}");
            var options = defaults with
            {
                ApiKey = o.String("api_key"), CheckpointDir = o.String("checkpoint_dir"),
                ReloadEndpoint = o.Has("reload_endpoint") ? o.String("reload_endpoint") : defaults.ReloadEndpoint,
                ReloadBody = o.String("reload_body") ?? defaults.ReloadBody, Timeout = TimeSpan.FromSeconds(timeout),
                PromptsPerRequest = o.Int("prompts_per_request") ?? defaults.PromptsPerRequest, Concurrency = o.Int("concurrency") ?? defaults.Concurrency,
                PromptsAsTokenIds = o.Bool("prompts_as_token_ids") ?? defaults.PromptsAsTokenIds,
            };
            try { options.Validate(); }
            catch (ArgumentException e) { throw new ArgumentException($"rollout: {e.Message}", e); }
            return new OpenAiEngine(options, c.Tokenizer, c.Policy.Config.EosTokenIds);
        }));
    }

    /// <summary>Adds (or replaces) an engine kind.</summary>
    public static void Register(RolloutEngineKind kind)
    {
        ArgumentNullException.ThrowIfNull(kind);
        if (string.IsNullOrWhiteSpace(kind.Name)) throw new ArgumentException("an engine needs a name");
        lock (Gate) Kinds[kind.Name] = kind;
    }

    /// <summary>The registered engine names, sorted.</summary>
    public static IReadOnlyList<string> Names
    {
        get { lock (Gate) return [.. Kinds.Keys.Order(StringComparer.Ordinal)]; }
    }

    /// <summary>The engine called <paramref name="name"/>; an <see cref="ArgumentException"/> listing the known ones otherwise.</summary>
    public static RolloutEngineKind Get(string name)
    {
        lock (Gate)
            if (Kinds.TryGetValue(name, out var kind)) return kind;
        var hint = name == "llamacpp" ? " (llamacpp is in Sharpen.LlamaCpp: call Sharpen.LlamaCpp.LlamaCppEngines.Register() first)" : "";
        throw new ArgumentException($"unknown rollout engine '{name}'; known: {string.Join(", ", Names)}{hint}");
    }

    /// <summary>Builds the engine <paramref name="spec"/> names for <paramref name="policy"/>. Dispose it when it is <see cref="IDisposable"/>.</summary>
    public static IRolloutEngine Create(RolloutSpec spec, CausalLM policy, ITokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        return Get(spec.Engine).Create(new RolloutEngineContext(policy, tokenizer, new RolloutEngineOptions(spec.Options)));
    }

    /// <summary>The built-in torch engine with an H₂O budget applied to every request that does not set its own.</summary>
    sealed class BudgetedEngine(RolloutEngine inner, int? budget, int? recent) : IRolloutEngine
    {
        public ITokenizer Tokenizer => inner.Tokenizer;
        public IReadOnlySet<int> EosIds => inner.EosIds;
        public bool SamplesTrainerPolicy => true;
        public IReadOnlyList<Rollout> Generate(IReadOnlyList<IReadOnlyList<int>> prompts, SamplingOptions options) =>
            inner.Generate(prompts, options.KvBudget is null ? options with { KvBudget = budget, KvRecent = recent } : options);
        public void SyncWeights(CausalLM policy) => inner.SyncWeights(policy);
    }
}

/// <summary>Helpers for reading engine option values from text (the CLI's <c>--engine-option key=value</c>).</summary>
public static class RolloutOptionText
{
    /// <summary>"key=value" pairs as a JSON object: numbers, true/false and null become JSON values, the rest text.</summary>
    public static JsonObject Parse(IEnumerable<string> pairs)
    {
        var o = new JsonObject();
        foreach (var p in pairs)
        {
            int eq = p.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0) throw new ArgumentException($"engine option '{p}' must be key=value");
            var (key, value) = (p[..eq].Trim(), p[(eq + 1)..].Trim());
            o[key] = value switch
            {
                "true" => JsonValue.Create(true),
                "false" => JsonValue.Create(false),
                "null" => null,
                _ when double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) => JsonValue.Create(d),
                _ => JsonValue.Create(value),
            };
        }
        return o;
    }
}
