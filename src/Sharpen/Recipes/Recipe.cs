using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Sharpen.Tasks;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;
using Sharpen.Rewards;
using Sharpen.Training.ExpertIteration;
using Sharpen.Training.Preference;
using Sharpen.Training.RewardModels;
using Sharpen.Training.Rl;
using Sharpen.Training.Sft;
using Sharpen.Models;
using Sharpen.Generation;

namespace Sharpen.Recipes;

/// <summary>
/// A YAML recipe: one file that says which model, which data or task, and which settings. Keys are
/// snake_case versions of the option records' properties (the same records the library and CLI
/// use), and an unknown key is an error naming it.
/// </summary>
/// <example>
/// <code>
/// kind: sft
/// output: runs/sft-countdown
/// model: { init: { hidden_size: 192, num_hidden_layers: 4, num_attention_heads: 6, intermediate_size: 512 } }
/// task: { name: countdown, min_numbers: 3, max_numbers: 3 }
/// sft: { max_steps: 400, batch_size: 64, learning_rate: 0.002 }
/// </code>
/// </example>
public sealed record Recipe
{
    /// <summary>What to run: <c>sft</c> (supervised fine-tuning, optionally C-RLFT), <c>rl</c> (online RL), <c>preference</c> (DPO and relatives on preference pairs),
    /// <c>reward_model</c> (a Bradley–Terry reward model on preference pairs), <c>offline_pg</c> (CoPG or A-LoL on scored completions),
    /// the online preference methods <c>online_dpo</c>, <c>dno</c> and <c>spin</c>, <c>expert_iteration</c> (ReST-EM / STaR: sample,
    /// keep the verified-correct, fine-tune, repeat), <c>prm</c> (a process reward model on step labels) or <c>implicit_prm</c> (an implicit PRM on outcome labels).</summary>
    public string Kind { get; init; } = "sft";

    /// <summary>Every recipe kind <c>sharpen train</c> runs.</summary>
    public static IReadOnlyList<string> Kinds { get; } = ["sft", "rl", "preference", "kto", "reward_model", "online_dpo", "dno", "spin", "offline_pg", "expert_iteration", "prm", "implicit_prm", "ranking", "align_distil"];
    /// <summary>Output folder (relative paths are relative to the working directory).</summary>
    public string Output { get; init; } = "runs/out";
    /// <summary>Seed for data generation and model initialisation.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>Where the policy comes from.</summary>
    public ModelSection Model { get; init; } = new();
    /// <summary>The verifiable task (data generation and evaluation).</summary>
    public TaskSection? Task { get; init; }
    /// <summary>Data files or generation counts.</summary>
    public DataSection Data { get; init; } = new();
    /// <summary>SFT settings.</summary>
    public SftOptions Sft { get; init; } = new();
    /// <summary>Final evaluation settings.</summary>
    public EvalSection Eval { get; init; } = new();
    /// <summary>RL settings as written; <see cref="RlOptions"/> applies them over the algorithm's preset.</summary>
    [JsonPropertyName("rl")] public JsonObject? RlSection { get; init; }
    /// <summary>The rollout engine as written: <c>engine</c> (torch | llamacpp | openai), its options, <c>tis</c>, <c>tis_cap</c>;
    /// see <see cref="RolloutSpec"/>. Kinds that sample: <see cref="RolloutKinds"/>.</summary>
    [JsonPropertyName("rollout")] public JsonObject? RolloutSection { get; init; }

    /// <summary>The recipe kinds whose sampling a <c>rollout</c> section can hand to another engine.</summary>
    public static IReadOnlyList<string> RolloutKinds { get; } = ["rl", "online_dpo", "dno", "spin"];

    /// <summary>The <c>rollout</c> section read (defaults: the torch engine); errors name the key.</summary>
    public RolloutSpec Rollout(string source = "recipe")
    {
        if (RolloutSection is { } section)
        {
            var engine = section["engine"] is JsonValue v && v.TryGetValue(out string? e) ? e : "torch";
            RolloutEngineKind kind;
            try { kind = RolloutEngines.Get(engine); }
            catch (ArgumentException ex) { throw new RecipeException($"{source}: 'rollout.engine': {ex.Message}"); }
            var known = RolloutSpec.CommonKeys.Concat(kind.Keys).ToList();
            if (section.Select(kv => kv.Key).FirstOrDefault(k => !known.Contains(k)) is { } bad)
                throw new RecipeException($"{source}: {UnknownKey.Message("rollout", bad, known)} (engine '{engine}')");
        }
        try { return RolloutSpec.Parse(RolloutSection); }
        catch (ArgumentException e) { throw new RecipeException($"{source}: {e.Message}"); }
    }

    /// <summary>Reward functions and weights for RL (default: the task's verifier with weight 1).</summary>
    public List<RewardSection>? Rewards { get; init; }
    /// <summary>Multi-turn RL (<c>kind: rl</c>): the environment the policy plays instead of prompts; see <see cref="EnvSection"/>.</summary>
    public EnvSection? Env { get; init; }

    /// <summary>Preference-optimisation settings as written; <see cref="PreferenceOptions"/> applies them over the defaults.</summary>
    [JsonPropertyName("preference")] public JsonObject? PreferenceSection { get; init; }

    /// <summary>The preference options: <see cref="global::Sharpen.Training.Preference.PreferenceOptions"/>' defaults with the recipe's <c>preference</c> keys on top.</summary>
    public PreferenceOptions PreferenceOptions(string source = "recipe") =>
        Bind(PreferenceSection, new global::Sharpen.Training.Preference.PreferenceOptions(), "preference", source, o => o.Validate());

    /// <summary>KTO settings as written (<c>kind: kto</c>); <see cref="KtoOptions"/> applies them over the defaults.</summary>
    [JsonPropertyName("kto")] public JsonObject? KtoSection { get; init; }

    /// <summary>The KTO options: <see cref="global::Sharpen.Training.Preference.KtoOptions"/>' defaults with the recipe's <c>kto</c> keys on top.</summary>
    public KtoOptions KtoOptions(string source = "recipe") =>
        Bind(KtoSection, new global::Sharpen.Training.Preference.KtoOptions(), "kto", source, o => o.Validate());

    /// <summary>AlignDistil settings as written (<c>kind: align_distil</c>); <see cref="AlignDistilOptions"/> applies them over the defaults.</summary>
    [JsonPropertyName("align_distil")] public JsonObject? AlignDistilSection { get; init; }

    /// <summary>The AlignDistil options: <see cref="global::Sharpen.Training.Preference.AlignDistilOptions"/>' defaults with the recipe's <c>align_distil</c> keys on top.</summary>
    public global::Sharpen.Training.Preference.AlignDistilOptions AlignDistilOptions(string source = "recipe") =>
        Bind(AlignDistilSection, new global::Sharpen.Training.Preference.AlignDistilOptions(), "align_distil", source, o => o.Validate());

    /// <summary>Reward-model settings as written; <see cref="RewardModelOptions"/> applies them over the defaults.</summary>
    [JsonPropertyName("reward_model")] public JsonObject? RewardModelSection { get; init; }

    /// <summary>The reward-model options: <see cref="global::Sharpen.Training.RewardModels.RewardModelOptions"/>' defaults with the recipe's <c>reward_model</c> keys on top.</summary>
    public RewardModelOptions RewardModelOptions(string source = "recipe") =>
        Bind(RewardModelSection, new global::Sharpen.Training.RewardModels.RewardModelOptions(), "reward_model", source, o => o.Validate());

    /// <summary>Online DPO settings as written (<c>kind: online_dpo</c>); see <see cref="OnlinePreferenceOptions"/>.</summary>
    [JsonPropertyName("online_dpo")] public JsonObject? OnlineDpoSection { get; init; }
    /// <summary>DNO settings as written (<c>kind: dno</c>); see <see cref="OnlinePreferenceOptions"/>.</summary>
    [JsonPropertyName("dno")] public JsonObject? DnoSection { get; init; }
    /// <summary>SPIN settings as written (<c>kind: spin</c>); see <see cref="OnlinePreferenceOptions"/>.</summary>
    [JsonPropertyName("spin")] public JsonObject? SpinSection { get; init; }

    /// <summary>
    /// The options of an online preference recipe (<c>online_dpo</c>, <c>dno</c> or <c>spin</c>): the preset of the recipe's
    /// kind (<see cref="global::Sharpen.Training.Preference.OnlineDpoOptions.For"/>) with the keys of the section named like the kind on top.
    /// </summary>
    public OnlineDpoOptions OnlinePreferenceOptions(string source = "recipe")
    {
        var section = Kind switch { "dno" => DnoSection, "spin" => SpinSection, _ => OnlineDpoSection };
        if (section?["algorithm"] is not null) throw new RecipeException($"{source}: '{Kind}.algorithm' is set by 'kind'; remove it");
        return Bind(section, global::Sharpen.Training.Preference.OnlineDpoOptions.For(Kind is "dno" or "spin" ? Kind : "online_dpo"), Kind, source, o => o.Validate());
    }

    /// <summary>An LLM judge for an online preference recipe, as written; <see cref="Judge"/> validates it.</summary>
    [JsonPropertyName("judge")] public JsonObject? JudgeSection { get; init; }

    /// <summary>The judge of an online preference recipe (null when the recipe has no <c>judge</c> section).</summary>
    public JudgeSpec? Judge(string source = "recipe") =>
        JudgeSection is null ? null : Bind(JudgeSection, new JudgeSpec(), "judge", source, o => o.Validate());

    /// <summary>Expert-iteration settings as written; <see cref="ExpertIterationOptions"/> applies them over the preset of <c>method</c>.</summary>
    [JsonPropertyName("expert_iteration")] public JsonObject? ExpertIterationSection { get; init; }

    /// <summary>The expert-iteration options: the preset of <c>expert_iteration.method</c> (rest_em, star) with the recipe's keys on top,
    /// and the recipe's <c>sft</c> section as the SFT stage of every iteration.</summary>
    public ExpertIterationOptions ExpertIterationOptions(string source = "recipe")
    {
        var name = ExpertIterationSection?["method"] is JsonValue v && v.TryGetValue(out string? m) ? m : "rest_em";
        global::Sharpen.Training.ExpertIteration.ExpertIterationOptions preset;
        try { preset = global::Sharpen.Training.ExpertIteration.ExpertIterationOptions.For(name); }
        catch (ArgumentException e) { throw new RecipeException($"{source}: 'expert_iteration.method': {e.Message}"); }
        return Bind(ExpertIterationSection, preset with { Sft = Sft }, "expert_iteration", source, o => (o with { Sft = Sft }).Validate());
    }

    /// <summary>Offline policy-gradient settings as written (<c>kind: offline_pg</c>); <see cref="OfflinePolicyOptions"/> applies them over the defaults.</summary>
    [JsonPropertyName("offline_pg")] public JsonObject? OfflinePolicySection { get; init; }

    /// <summary>The offline policy-gradient options: <see cref="global::Sharpen.Training.Rl.OfflinePolicyOptions"/>' defaults with the recipe's <c>offline_pg</c> keys on top.</summary>
    public OfflinePolicyOptions OfflinePolicyOptions(string source = "recipe") =>
        Bind(OfflinePolicySection, new global::Sharpen.Training.Rl.OfflinePolicyOptions(), "offline_pg", source, o => o.Validate());

    /// <summary>Ranking-policy settings as written (kind <c>ranking</c>); <see cref="RankingOptions"/> applies them over the defaults.</summary>
    [JsonPropertyName("ranking")] public JsonObject? RankingSection { get; init; }

    /// <summary>The ranking options: <see cref="global::Sharpen.Training.Ranking.RankingOptions"/>' defaults with the recipe's <c>ranking</c> keys on top.</summary>
    public global::Sharpen.Training.Ranking.RankingOptions RankingOptions(string source = "recipe") =>
        Bind(RankingSection, new global::Sharpen.Training.Ranking.RankingOptions(), "ranking", source, o => o.Validate());

    /// <summary>Process-reward-model settings as written (kind <c>prm</c>); <see cref="PrmOptions"/> applies them over the defaults.</summary>
    [JsonPropertyName("prm")] public JsonObject? PrmSection { get; init; }

    /// <summary>The PRM options: <see cref="global::Sharpen.Training.RewardModels.PrmOptions"/>' defaults with the recipe's <c>prm</c> keys on top.</summary>
    public PrmOptions PrmOptions(string source = "recipe") =>
        Bind(PrmSection, new global::Sharpen.Training.RewardModels.PrmOptions(), "prm", source, o => o.Validate());

    /// <summary>Implicit-PRM settings as written (kind <c>implicit_prm</c>); <see cref="ImplicitPrmOptions"/> applies them over the defaults.</summary>
    [JsonPropertyName("implicit_prm")] public JsonObject? ImplicitPrmSection { get; init; }

    /// <summary>The implicit-PRM options: <see cref="global::Sharpen.Training.RewardModels.ImplicitPrmOptions"/>' defaults with the recipe's <c>implicit_prm</c> keys on top.</summary>
    public ImplicitPrmOptions ImplicitPrmOptions(string source = "recipe") =>
        Bind(ImplicitPrmSection, new global::Sharpen.Training.RewardModels.ImplicitPrmOptions(), "implicit_prm", source, o => o.Validate());

    /// <summary>
    /// <paramref name="defaults"/> with the keys of <paramref name="section"/> on top; then <paramref name="validate"/>.
    /// Unknown or mistyped keys and failed validation become a <see cref="RecipeException"/> naming <c>name.key</c>.
    /// </summary>
    static T Bind<T>(JsonObject? section, T defaults, string name, string source, Func<T, T> validate) where T : class
    {
        var merged = JsonSerializer.SerializeToNode(defaults, Json)!.AsObject();
        foreach (var (k, val) in section ?? new JsonObject()) merged[k] = val?.DeepClone();
        try
        {
            return validate(merged.Deserialize<T>(Json) ?? defaults);
        }
        catch (JsonException e)
        {
            throw new RecipeException($"{source}: {UnknownKey.Describe(e, name)}");
        }
        catch (ArgumentException e)
        {
            throw new RecipeException($"{source}: {e.Message}");
        }
    }

    /// <summary>The RL options: the preset of <c>rl.algorithm</c> with the recipe's keys on top.</summary>
    public RlOptions RlOptions(string source = "recipe")
    {
        var given = RlSection ?? new JsonObject();
        var name = given["algorithm"] is JsonValue v && v.TryGetValue(out string? a) ? a : "grpo";
        RlOptions preset;
        try { preset = global::Sharpen.Training.Rl.RlOptions.For(name); }
        catch (ArgumentException e) { throw new RecipeException($"{source}: 'rl.algorithm': {e.Message}"); }
        return Bind(given, preset, "rl", source, o => o.Validate());
    }

    internal static readonly JsonSerializerOptions Json = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.SnakeCaseLower) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
        NumberHandling = JsonNumberHandling.Strict,
    };

    /// <summary>Reads and validates a recipe file.</summary>
    public static Recipe Load(string path)
    {
        if (!File.Exists(path)) throw new RecipeException($"{path}: recipe not found");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary>Parses recipe text; <paramref name="source"/> names it in errors.</summary>
    public static Recipe Parse(string yaml, string source = "recipe.yaml") => FromJson(YamlToJson.Convert(yaml, source), source);

    /// <summary>A recipe from its JSON form (what the YAML becomes); TRL's names are rewritten first (<see cref="TrlNames.Normalize"/>).</summary>
    public static Recipe FromJson(JsonNode node, string source)
    {
        if (node is JsonObject root) TrlNames.Normalize(root, source);
        Recipe recipe;
        try
        {
            recipe = node.Deserialize<Recipe>(Json) ?? throw new RecipeException($"{source}: the recipe is empty");
        }
        catch (JsonException e)
        {
            throw new RecipeException($"{source}: {UnknownKey.Describe(e, "")}");
        }
        if (!Kinds.Contains(recipe.Kind))
            throw new RecipeException($"{source}: 'kind' is '{recipe.Kind}'; supported: {string.Join(", ", Kinds)}");
        if (recipe.Kind == "expert_iteration")
        {
            recipe.ExpertIterationOptions(source);
            if (recipe.Task is null) throw new RecipeException($"{source}: an expert_iteration recipe needs a 'task' (its verifier decides what is kept)");
        }
        if (recipe.Kind == "preference") { recipe.PreferenceOptions(source); ValidatePairsData(recipe, source); }
        if (recipe.Kind == "kto") { recipe.KtoOptions(source); ValidatePairsData(recipe, source); }
        if (recipe.Kind == "align_distil") { recipe.AlignDistilOptions(source); ValidateProcessData(recipe, source, "prompt/response rows {\"prompt\", \"completion\"} or {\"messages\"}"); }
        if (recipe.Kind == "reward_model") { recipe.RewardModelOptions(source); ValidatePairsData(recipe, source); }
        if (recipe.Kind == "offline_pg")
        {
            recipe.OfflinePolicyOptions(source);
            if (recipe.Data.Train is null)
                throw new RecipeException($"{source}: an offline_pg recipe needs 'data.train' (a JSONL of prompt/completion/reward rows; prompt/steps/labels rows for loss direct_advantage_po)");
            if (recipe.Model.Init is not null && recipe.Model.Tokenizer == "task" && recipe.Task is null)
                throw new RecipeException($"{source}: 'model.init' in an offline_pg recipe needs 'model.tokenizer' ('chars:ALPHABET' or a folder with tokenizer.json), since there is no task");
        }
        if (recipe.Kind == "ranking")
        {
            var ranking = recipe.RankingOptions(source);
            if (ranking.Task == "prompt_selection" && (recipe.Task is null || ranking.Frozen is null))
                throw new RecipeException($"{source}: a ranking recipe with 'ranking.task: prompt_selection' needs a 'task' (its problems and verifier) and 'ranking.frozen' (checkpoint, or url + model)");
            if (ranking.Task == "retrieval" && ranking.Frozen is not null)
                throw new RecipeException($"{source}: 'ranking.frozen' is read only with 'ranking.task: prompt_selection'");
        }
        if (recipe.Kind == "prm") { recipe.PrmOptions(source); ValidateProcessData(recipe, source, "step-labelled rows {\"prompt\", \"steps\", \"labels\"}"); }
        if (recipe.Kind == "implicit_prm") { recipe.ImplicitPrmOptions(source); ValidateProcessData(recipe, source, "outcome-labelled rows {\"prompt\", \"completion\", \"label\"}"); }
        if (recipe.Env is not null && recipe.Kind != "rl") throw new RecipeException($"{source}: 'env' works with kind rl, not {recipe.Kind}");
        if (recipe.Kind == "rl")
        {
            recipe.RlOptions(source);
            if (recipe.Env is { } env)
            {
                env.Validate(source);
                if (recipe.Task is not null || recipe.Data.Train is not null || recipe.Rewards is not null || recipe.Data.Offline is not null)
                    throw new RecipeException($"{source}: an rl recipe with 'env' takes its episodes and rewards from the environment; remove 'task', 'data.train', 'data.offline' and 'rewards'");
            }
            else if (recipe.Task is null)
            {
                if (recipe.Data.Train is null || recipe.Rewards is not { Count: > 0 } || recipe.Rewards.Any(r => string.IsNullOrEmpty(r.Model) && string.IsNullOrEmpty(r.Url) && string.IsNullOrEmpty(r.Prm) && r.SelfLikelihood is null && r.Flr is null))
                    throw new RecipeException($"{source}: an rl recipe needs a 'task' (its verifier is the reward), or, without one, 'data.train' " +
                        "(prompts) and 'rewards' whose every entry is a 'model' (a reward-model folder), a 'prm' (a PRM or implicit-PRM folder), a 'url' (a reward server), 'self_likelihood' or 'flr'");
            }
        }
        if (recipe.Kind is "online_dpo" or "dno" or "spin")
        {
            recipe.OnlinePreferenceOptions(source);
            foreach (var (other, section) in new[] { ("online_dpo", recipe.OnlineDpoSection), ("dno", recipe.DnoSection), ("spin", recipe.SpinSection) })
                if (section is not null && other != recipe.Kind) throw new RecipeException($"{source}: '{other}' section in a '{recipe.Kind}' recipe; use '{recipe.Kind}'");
            if (recipe.Kind != "spin" && recipe.Task is null)
                throw new RecipeException($"{source}: a {recipe.Kind} recipe needs a 'task' (its verifier is the judge; reward models go in 'rewards')");
            if (recipe.Task is null && recipe.Rewards is not null)
                throw new RecipeException($"{source}: 'rewards' in a spin recipe need a 'task'");
        }
        if (recipe.JudgeSection is not null)
        {
            if (recipe.Kind is not ("online_dpo" or "dno"))
                throw new RecipeException($"{source}: 'judge' gives pairwise preferences to an online_dpo or dno recipe; a {recipe.Kind} recipe takes none");
            recipe.Judge(source);
        }
        if (recipe.RolloutSection is not null)
        {
            if (!RolloutKinds.Contains(recipe.Kind))
                throw new RecipeException($"{source}: 'rollout' works with kind {string.Join(", ", RolloutKinds)}; a {recipe.Kind} recipe does not sample rollouts");
            var spec = recipe.Rollout(source);
            if (spec.Tis == true && recipe.Kind != "rl") throw new RecipeException($"{source}: 'rollout.tis' corrects a policy-gradient loss; a {recipe.Kind} recipe has none");
        }
        if (recipe.Model.Init is { } init && init.Select(kv => kv.Key).FirstOrDefault(k => !Models.ModelConfig.Keys.Contains(k)) is { } badKey)
            throw new RecipeException($"{source}: {UnknownKey.Message("model.init", badKey, Models.ModelConfig.Keys)}");
        if (recipe.Kind == "ranking")
        {
            if (recipe.Model.Path is not null || recipe.Model.Init is not null)
                throw new RecipeException($"{source}: a ranking recipe trains a scorer over the candidates, not a language model; remove 'model' (a prompt-selection frozen model goes in 'ranking.frozen')");
            if (recipe.Task is not null) recipe.Task.Build(source);
            return recipe;
        }
        if (recipe.Model.Path is null == recipe.Model.Init is null)
            throw new RecipeException($"{source}: 'model' needs exactly one of 'path' (a Hugging Face folder) or 'init' (a config for a fresh model)");
        try { recipe.Sft.Validate(); }
        catch (ArgumentException e) { throw new RecipeException($"{source}: {e.Message}"); }
        if (recipe.Model.Lora is { } lora)
        {
            if (!ModelSection.LoraKinds.Contains(recipe.Kind))
                throw new RecipeException($"{source}: 'model.lora' works with kind {string.Join(", ", ModelSection.LoraKinds)}; a {recipe.Kind} recipe trains every weight");
            try { lora.Validate(); }
            catch (ArgumentException e) { throw new RecipeException($"{source}: model.{e.Message}"); }
        }
        if (recipe.Task is not null) recipe.Task.Build(source);   // validates the task options now
        if (recipe.Eval.Task is { } evalTask)
        {
            if (recipe.Kind != "rl" || recipe.Task is null || recipe.Env is not null)
                throw new RecipeException($"{source}: 'eval.task' works in rl recipes with a 'task' (it changes the task's options for the evaluation)");
            if (evalTask.Name != recipe.Task.Name)
                throw new RecipeException($"{source}: 'eval.task.name' is '{evalTask.Name}' but the recipe trains on '{recipe.Task.Name}'; 'eval.task' changes the options of the same task");
            evalTask.Build(source + " 'eval.task'");
        }
        if (recipe.Task is null && recipe.Data.Train is null && recipe.Env is null)
            throw new RecipeException($"{source}: give 'task' (to generate data) or 'data.train' (a JSONL file)");
        return recipe;
    }

    /// <summary>Checks of recipes trained on preference data (<c>preference</c>, <c>kto</c> and <c>reward_model</c>).</summary>
    static void ValidatePairsData(Recipe recipe, string source)
    {
        var kind = recipe.Kind.Replace('_', '-');
        if (recipe.Data.Train is null)
            throw new RecipeException(recipe.Kind == "kto"
                ? $"{source}: a kto recipe needs 'data.train' (a JSONL of unpaired rows {{\"prompt\", \"completion\", \"label\": true|false}})"
                : $"{source}: a {kind} recipe needs 'data.train' (a JSONL of prompt/chosen/rejected rows or ranked lists)");
        if (recipe.Model.Init is not null && recipe.Model.Path is null && recipe.Model.Tokenizer == "task" && recipe.Task is null)
            throw new RecipeException($"{source}: 'model.init' in a {kind} recipe needs 'model.tokenizer' ('chars:ALPHABET' or a folder with tokenizer.json), since there is no task");
    }

    /// <summary>Checks of process-reward recipes (<c>prm</c>, <c>implicit_prm</c>): they read <c>data.train</c> and need a tokenizer.</summary>
    static void ValidateProcessData(Recipe recipe, string source, string rows)
    {
        var kind = (recipe.Kind == "prm" ? "a " : "an ") + recipe.Kind.Replace('_', '-');
        if (recipe.Data.Train is null)
            throw new RecipeException($"{source}: {kind} recipe needs 'data.train' (a JSONL of {rows})");
        if (recipe.Model.Init is not null && recipe.Model.Path is null && recipe.Model.Tokenizer == "task" && recipe.Task is null)
            throw new RecipeException($"{source}: 'model.init' in {kind} recipe needs 'model.tokenizer' ('chars:ALPHABET' or a folder with tokenizer.json) or a 'task'");
    }
}

/// <summary>The <c>model</c> section: a checkpoint folder, or the config of a freshly initialised model.</summary>
public sealed record ModelSection
{
    /// <summary>A Hugging Face folder (config.json, model.safetensors, tokenizer).</summary>
    public string? Path { get; init; }
    /// <summary>config.json keys for a fresh model; model_type defaults to llama and vocab_size/special ids come from the tokenizer.</summary>
    public JsonObject? Init { get; init; }
    /// <summary>For <c>init</c>: <c>task</c> (a character tokenizer over the task's alphabet, the default), <c>chars:ALPHABET</c>, or a folder with tokenizer.json.</summary>
    public string Tokenizer { get; init; } = "task";
    /// <summary>Train LoRA adapters instead of every weight (kinds <see cref="LoraKinds"/>): <c>r</c>, <c>alpha</c>, <c>dropout</c>, <c>target_modules</c>.</summary>
    public Models.LoraOptions? Lora { get; init; }

    /// <summary>The recipe kinds that can train LoRA adapters.</summary>
    public static IReadOnlyList<string> LoraKinds { get; } = ["sft", "rl", "preference", "online_dpo", "dno", "spin", "offline_pg"];
}

/// <summary>The <c>task</c> section: a registered task name plus its options as further keys.</summary>
public sealed record TaskSection
{
    /// <summary>Task name (countdown, game24, arithmetic, gsm8k, stack-code, symbol-ops).</summary>
    public string Name { get; init; } = "";
    /// <summary>The task's option keys (snake_case of its options record).</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Options { get; init; }

    static readonly Dictionary<string, Type> OptionTypes = new()
    {
        ["countdown"] = typeof(CountdownOptions), ["game24"] = typeof(Game24Options),
        ["arithmetic"] = typeof(ArithmeticOptions), ["gsm8k"] = typeof(Gsm8kOptions),
        ["sentiment"] = typeof(SentimentOptions),
        ["stack-code"] = typeof(StackCodeOptions), ["symbol-ops"] = typeof(SymbolOpsOptions),
    };

    /// <summary>Creates the task; errors name the recipe file and the key.</summary>
    public IVerifiableTask Build(string source) => TaskRegistry.Create(Name, BuildOptions(source));

    /// <summary>
    /// A task section from command-line <c>key=value</c> pairs (the recipe's snake_case option keys, e.g.
    /// <c>min_numbers=4</c>); values that read as a number or true/false are typed. Errors name <paramref name="source"/>.
    /// </summary>
    public static TaskSection FromPairs(string name, IEnumerable<string> pairs, string source)
    {
        var options = new Dictionary<string, JsonElement>();
        foreach (var pair in pairs)
        {
            int eq = pair.IndexOf('=');
            if (eq <= 0) throw new RecipeException($"{source}: '{pair}' is not key=value (e.g. max_numbers=3)");
            var (key, text) = (pair[..eq].Trim(), pair[(eq + 1)..].Trim());
            JsonNode? value = long.TryParse(text, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var l) ? l
                : double.TryParse(text, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var d) ? d
                : text is "true" or "false" ? text == "true" : text;
            options[key] = JsonSerializer.SerializeToElement(value);
        }
        return new TaskSection { Name = name, Options = options };
    }

    /// <summary>The task's options (validated); errors name the recipe file and the key.</summary>
    public TaskOptions BuildOptions(string source, string key = "task")
    {
        if (!OptionTypes.TryGetValue(Name, out var type))
            throw new RecipeException($"{source}: '{key}.name' is '{Name}'; known: {string.Join(", ", OptionTypes.Keys)}");
        TaskOptions options;
        try
        {
            var obj = new JsonObject();
            foreach (var (k, v) in Options ?? []) obj[k] = JsonNode.Parse(v.GetRawText());
            if (type == typeof(Environments.SelfCorrectionOptions) && obj.ContainsKey("task_options"))
                throw new RecipeException($"{source}: 'env.task_options' is not read in recipes (the task's defaults are used); self-correction reads 'task' and 'instruction'");
            options = (TaskOptions)(obj.Deserialize(type, Recipe.Json) ?? throw new RecipeException($"{source}: bad 'task' options"));
            options.Validate();
        }
        catch (JsonException e)
        {
            throw new RecipeException($"{source}: {UnknownKey.Describe(e, key)}");
        }
        catch (ArgumentException e)
        {
            throw new RecipeException($"{source}: '{key}' options: {e.Message}");
        }
        return options;
    }
}

/// <summary>
/// The <c>env</c> section of a multi-turn <c>rl</c> recipe: a built-in environment by <see cref="Name"/> (its option keys
/// beside it, e.g. <c>low</c>, <c>high</c>, <c>max_turns</c> for guess-number) or a server by <see cref="Url"/>, plus the
/// rollout's <see cref="Turns"/> and <see cref="TokenBudget"/>.
/// </summary>
public sealed record EnvSection
{
    /// <summary>A built-in environment (<see cref="Environments.EnvironmentRegistry.Names"/>), or the label of a server's metrics with <see cref="Url"/>.</summary>
    public string Name { get; init; } = "";
    /// <summary>An environment server's base URL (<c>POST /reset</c>, <c>POST /step</c>; see docs/recipes.md).</summary>
    public string? Url { get; init; }
    /// <summary>Most assistant turns per trajectory (default: the environment's own <c>max_turns</c>, or 8 for a server).</summary>
    public int? Turns { get; init; }
    /// <summary>Token budget of a whole trajectory (prompt, environment text and the policy's tokens). Default 512.</summary>
    public int TokenBudget { get; init; } = 512;
    /// <summary>Server only: the characters of its observations and actions, for a character tokenizer (<c>model.tokenizer: task</c>).</summary>
    public string Alphabet { get; init; } = "";
    /// <summary>Server only: seconds one request may take.</summary>
    public double TimeoutSeconds { get; init; } = 30;
    /// <summary>Server only: how often a transient failure is retried.</summary>
    public int Retries { get; init; } = 2;
    /// <summary>The environment's option keys (snake_case of its options record, e.g. <c>GuessNumberOptions</c>); for a server, sent with every reset.</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? Options { get; init; }

    static readonly Dictionary<string, Type> OptionTypes = new(StringComparer.OrdinalIgnoreCase)
    {
        ["guess-number"] = typeof(Environments.GuessNumberOptions), ["wordle"] = typeof(Environments.WordleOptions),
        ["twenty-questions"] = typeof(Environments.TwentyQuestionsOptions), ["maze"] = typeof(Environments.MazeOptions),
        ["countdown-tool"] = typeof(Environments.CountdownToolOptions), ["self-correction"] = typeof(Environments.SelfCorrectionOptions),
        ["dsp"] = typeof(Environments.DspOptions), ["daslam"] = typeof(Environments.DaslamOptions),
    };

    /// <summary>The built-in environment's options (null for a server or no option keys); errors name the key.</summary>
    public Environments.EnvironmentOptions? BuildOptions(string source)
    {
        if (Url is not null) return null;
        if (!Environments.EnvironmentRegistry.Names.Contains(Name, StringComparer.OrdinalIgnoreCase))
            throw new RecipeException($"{source}: 'env.name' is '{Name}'; known: {string.Join(", ", Environments.EnvironmentRegistry.Names)} (or give 'env.url' for a server)");
        if (!OptionTypes.TryGetValue(Name, out var type))
        {
            if (Options is { Count: > 0 }) throw new RecipeException($"{source}: 'env' options ({string.Join(", ", Options.Keys)}) are not read for '{Name}' in recipes; set them from code");
            return null;
        }
        try
        {
            var obj = new JsonObject();
            foreach (var (k, v) in Options ?? []) obj[k] = JsonNode.Parse(v.GetRawText());
            JsonNode? task = null;
            bool frozenEnv = typeof(Environments.FrozenEnvironmentOptions).IsAssignableFrom(type);
            if (frozenEnv && obj.Remove("task", out task) && task is null) throw new RecipeException($"{source}: 'env.task' is empty; give a task name or {{name: ..., options}}");
            if (type == typeof(Environments.SelfCorrectionOptions) && obj.ContainsKey("task_options"))
                throw new RecipeException($"{source}: 'env.task_options' is not read in recipes (the task's defaults are used); self-correction reads 'task' and 'instruction'");
            var options = (Environments.EnvironmentOptions)(obj.Deserialize(type, Recipe.Json) ?? throw new RecipeException($"{source}: bad 'env' options"));
            if (options is Environments.FrozenEnvironmentOptions f)
            {
                // env.task: a task name, or a task section ({name: countdown, max_numbers: 3, ...}) built like the recipe's own task.
                var section = task switch
                {
                    null => new TaskSection { Name = f.Task },
                    JsonObject => task.Deserialize<TaskSection>(Recipe.Json)!,
                    JsonValue v when v.TryGetValue<string>(out var taskName) => new TaskSection { Name = taskName },
                    _ => throw new RecipeException($"{source}: 'env.task' must be a task name or a task section, got {task.ToJsonString()}"),
                };
                options = f with { Task = section.Name, TaskOptions = section.BuildOptions(source, "env.task") };
                if (f.Frozen is null) throw new RecipeException($"{source}: 'env.frozen' is required for '{Name}': {{checkpoint: DIR}} or {{url: http://HOST:PORT/v1, model: NAME}}");
            }
            options.Validate();
            return options;
        }
        catch (JsonException e) { throw new RecipeException($"{source}: {UnknownKey.Describe(e, "env")}"); }
        catch (ArgumentException e) { throw new RecipeException($"{source}: 'env' options: {e.Message}"); }
    }

    /// <summary>Checks the section; errors name the key.</summary>
    public void Validate(string source)
    {
        if (Url is null && string.IsNullOrWhiteSpace(Name)) throw new RecipeException($"{source}: 'env' needs 'name' (a built-in environment) or 'url' (an environment server)");
        if (Url is not null && !(Uri.TryCreate(Url, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"))
            throw new RecipeException($"{source}: 'env.url' must be an http(s) URL, got '{Url}'");
        BuildOptions(source);
        if (Turns is < 1) throw new RecipeException($"{source}: 'env.turns' must be 1 or more, got {Turns}");
        if (TokenBudget < 2) throw new RecipeException($"{source}: 'env.token_budget' must be 2 or more, got {TokenBudget}");
        if (!(TimeoutSeconds > 0) || !double.IsFinite(TimeoutSeconds)) throw new RecipeException($"{source}: 'env.timeout_seconds' must be a positive number, got {TimeoutSeconds}");
        if (Retries < 0) throw new RecipeException($"{source}: 'env.retries' must be 0 or more, got {Retries}");
    }
}

/// <summary>One entry of the <c>rewards</c> list: a reward by name (the task's verifier is named after the task) and its weight.</summary>
public sealed record RewardSection
{
    /// <summary>Reward name: the task name for its verifier; with <see cref="Url"/>, the label of its metrics (default <c>remote</c>).</summary>
    public string Name { get; init; } = "";
    /// <summary>Weight in the summed reward.</summary>
    public double Weight { get; init; } = 1.0;
    /// <summary>A reward-model checkpoint folder (written by RewardModelTrainer); give this or <see cref="Name"/>, not both.</summary>
    public string? Model { get; init; }
    /// <summary>Reward model only: standardise its scores over each batch.</summary>
    public bool Normalize { get; init; }
    /// <summary>A reward server's URL (<see cref="Rewards.HttpReward"/>: each batch is POSTed as JSON).</summary>
    public string? Url { get; init; }
    /// <summary>Reward server only: seconds one request may take.</summary>
    public double TimeoutSeconds { get; init; } = 60;
    /// <summary>Reward server only: how often a failed request (connection, timeout, HTTP 408/429/5xx) is repeated.</summary>
    public int Retries { get; init; } = 2;
    /// <summary>Reward server only: most completions per request (0 = the whole batch in one request).</summary>
    public int MaxBatch { get; init; }
    /// <summary>Reward server only: requests in flight at once when a batch is split by <see cref="MaxBatch"/>.</summary>
    public int Concurrency { get; init; } = 1;
    /// <summary><c>[min, max]</c>: clip this reward's scores into the range (±Infinity too) instead of stopping the run at a
    /// score beyond <see cref="MaxAbs"/>. NaN always stops it.</summary>
    public double[]? Clip { get; init; }
    /// <summary>
    /// Sharpening's self-reward (rl recipes): the teacher-forced log π_base(y | x) of the completion under a frozen copy of the
    /// starting policy, <c>{normalize: true}</c> for the per-token mean. Give this alone (no name, model or url); its metrics
    /// are <c>reward/self_likelihood</c>.
    /// </summary>
    public SelfLikelihoodSection? SelfLikelihood { get; init; }
    /// <summary>
    /// Follow-up Likelihood as Reward (FLR, arXiv:2409.13948; rl recipes): mean log-likelihood of positive user follow-ups
    /// minus that of negative ones after the completion (<see cref="Rewards.FollowUpLikelihoodReward"/>), scored by a frozen
    /// copy of the starting policy or by <see cref="FlrSection.Model"/>. Give this alone (no name-as-verifier, model or url);
    /// its metrics are <c>reward/flr</c> (or <c>reward/NAME</c>).
    /// </summary>
    public FlrSection? Flr { get; init; }
    /// <summary>Largest |score| accepted without <see cref="Clip"/>; a larger one (or ±Infinity) stops the run with an error naming the reward.</summary>
    public double MaxAbs { get; init; } = Rewards.RewardCombiner.DefaultMaxAbs;
    /// <summary>
    /// A process-reward-model folder (<c>kind: prm</c>, with <c>prm.json</c>) or an implicit-PRM folder (<c>kind: implicit_prm</c>,
    /// with <c>implicit_prm.json</c>) as an outcome reward (Easy-to-Hard, Sun et al. 2024): each completion is split at the step
    /// boundaries the model was trained with, every step is scored, and the scores are combined by <see cref="Aggregate"/>.
    /// Its metrics are <c>reward/NAME</c> (default <c>prm</c> or <c>implicit_prm</c>).
    /// </summary>
    public string? Prm { get; init; }
    /// <summary>With <see cref="Prm"/>: <c>min</c>, <c>last</c>, <c>mean</c>, <c>product</c> or <c>sum</c> of the step scores
    /// (default <c>min</c> for a PRM, <c>sum</c> for an implicit PRM, whose step rewards add up to its outcome reward).</summary>
    public string? Aggregate { get; init; }
}

/// <summary>The <c>flr</c> entry of a reward (Follow-up Likelihood as Reward).</summary>
public sealed record FlrSection
{
    /// <summary>A causal-LM checkpoint folder (Hugging Face layout with its tokenizer) that scores the follow-ups; null: a
    /// frozen copy of the policy's starting weights with the policy's tokenizer.</summary>
    public string? Model { get; init; }
    /// <summary>Positive follow-ups F+ (null: <see cref="Rewards.FollowUpLikelihoodReward.DefaultPositive"/>).</summary>
    public List<string>? Positive { get; init; }
    /// <summary>Negative follow-ups F− (null: <see cref="Rewards.FollowUpLikelihoodReward.DefaultNegative"/>).</summary>
    public List<string>? Negative { get; init; }
    /// <summary>Text between the completion and the follow-up: the user's next turn begins.</summary>
    public string UserTurn { get; init; } = "\nUser: ";
}

/// <summary>The <c>self_likelihood</c> entry of a reward.</summary>
public sealed record SelfLikelihoodSection
{
    /// <summary>Divide log π_base(y | x) by the completion's token count (with EOS).</summary>
    public bool Normalize { get; init; } = true;
}

/// <summary>The <c>data</c> section.</summary>
public sealed record DataSection
{
    /// <summary>Training JSONL (prompt/completion or messages). Default: generated from the task.</summary>
    public string? Train { get; init; }
    /// <summary>Held-out JSONL. Default: a split generated from the task that shares no problem with training.</summary>
    public string? Test { get; init; }
    /// <summary>Training problems to generate when <see cref="Train"/> is absent.</summary>
    public int TrainProblems { get; init; } = 20000;
    /// <summary>Held-out problems to generate when <see cref="Test"/> is absent.</summary>
    public int TestProblems { get; init; } = 500;
    /// <summary>RL only: scored completions with behaviour log-probs for offline training (TOPR); no generation.</summary>
    public string? Offline { get; init; }
    /// <summary>Skip and count malformed JSONL lines instead of stopping at the first.</summary>
    public bool SkipBadLines { get; init; }
}

/// <summary>The <c>eval</c> section: the evaluation after training.</summary>
public sealed record EvalSection
{
    /// <summary>Held-out problems evaluated (at most the held-out set).</summary>
    public int Problems { get; init; } = 500;
    /// <summary>Samples per problem for pass@k and maj@k (1 = greedy only).</summary>
    public int Samples { get; init; } = 1;
    /// <summary>Sampling temperature for pass@k and maj@k.</summary>
    public double Temperature { get; init; } = 1.0;
    /// <summary>Most new tokens per completion.</summary>
    public int MaxNewTokens { get; init; } = 64;
    /// <summary>
    /// rl recipes with a <c>task</c>: evaluate before and after training on <see cref="Problems"/> problems generated from this
    /// task instead of the held-out split of the training task (same task name, other options), e.g. Easy-to-Hard's
    /// train-on-easy, evaluate-on-hard: <c>task: {name: countdown, max_numbers: 3}</c>, <c>eval: {task: {name: countdown, min_numbers: 4, max_numbers: 4}}</c>.
    /// </summary>
    public TaskSection? Task { get; init; }
}

/// <summary>A recipe that cannot be used; the message names the file and the key.</summary>
public sealed class RecipeException(string message) : Exception(message);

/// <summary>YAML → JSON with typed plain scalars (int, float, bool, null), so System.Text.Json can bind records.</summary>
internal static class YamlToJson
{
    public static JsonNode Convert(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlException e)
        {
            throw new RecipeException($"{source}:{e.Start.Line}: invalid YAML: {e.InnerException?.Message ?? e.Message}");
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            // YamlDotNet throws these (not a YamlException) on some malformed input: a document marker inside a plain scalar, an anchor on an empty key.
            throw new RecipeException($"{source}: invalid YAML: {e.Message}");
        }
        if (stream.Documents.Count == 0) throw new RecipeException($"{source}: the recipe is empty");
        var budget = new int[] { MaxNodes };
        return Node(stream.Documents[0].RootNode, source, 0, budget) ?? throw new RecipeException($"{source}: the recipe is empty");
    }

    /// <summary>Most values a recipe may expand to, aliases counted each time they are used (bounds a YAML "alias bomb").</summary>
    public const int MaxNodes = 100_000;

    static JsonNode? Node(YamlNode node, string source, int depth, int[] budget)
    {
        if (depth > 32) throw new RecipeException($"{source}:{node.Start.Line}: nesting deeper than 32 levels");
        if (--budget[0] < 0)
            throw new RecipeException($"{source}:{node.Start.Line}: the recipe expands to more than {MaxNodes} values (aliases such as *name repeat what they point to); a recipe needs far fewer");
        switch (node)
        {
            case YamlMappingNode map:
                var o = new JsonObject();
                foreach (var (k, v) in map.Children)
                {
                    var key = (k as YamlScalarNode)?.Value ?? throw new RecipeException($"{source}:{k.Start.Line}: keys must be plain strings");
                    if (o.ContainsKey(key)) throw new RecipeException($"{source}:{k.Start.Line}: duplicate key '{key}'");
                    o[key] = Node(v, source, depth + 1, budget);
                }
                return o;
            case YamlSequenceNode seq:
                var a = new JsonArray();
                foreach (var item in seq.Children) a.Add(Node(item, source, depth + 1, budget));
                return a;
            case YamlScalarNode s:
                var text = s.Value ?? "";
                if (s.Style is ScalarStyle.SingleQuoted or ScalarStyle.DoubleQuoted or ScalarStyle.Literal or ScalarStyle.Folded) return JsonValue.Create(text);
                if (text is "" or "~" or "null" or "Null" or "NULL") return null;
                if (text is "true" or "True" or "TRUE") return JsonValue.Create(true);
                if (text is "false" or "False" or "FALSE") return JsonValue.Create(false);
                if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var l)) return JsonValue.Create(l);
                if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) && double.IsFinite(d)) return JsonValue.Create(d);
                return JsonValue.Create(text);
            default:
                throw new RecipeException($"{source}:{node.Start.Line}: unsupported YAML node");
        }
    }
}
