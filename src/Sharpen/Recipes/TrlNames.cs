using System.Globalization;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;

namespace Sharpen.Recipes;

/// <summary>
/// TRL's (and transformers' <c>TrainingArguments</c>') names for recipe keys that mean the same thing, accepted beside
/// Sharpen's own. <see cref="Normalize"/> rewrites a recipe's JSON before it is bound: an alias becomes the Sharpen key;
/// an alias and its Sharpen key both given with different values is an error naming both. A few TRL keys carry a value
/// Sharpen spells differently (<c>loss_type</c>, <c>scale_rewards</c>, <c>lr_scheduler_type</c>) or count in other units
/// (GRPO's batch sizes and <c>max_steps</c>); those are converted by the rules documented on each method.
/// </summary>
public static class TrlNames
{
    /// <summary>Top-level aliases: TRL name → Sharpen key (a dotted key is nested).</summary>
    public static IReadOnlyList<(string Trl, string Sharpen)> TopLevel { get; } =
        [("output_dir", "output"), ("model_name_or_path", "model.path")];

    /// <summary>Renames shared by every step-counted section (sft, preference, reward_model, offline_pg, prm, implicit_prm).</summary>
    static readonly (string Trl, string Sharpen)[] Schedule =
    [
        ("per_device_train_batch_size", "batch_size"), ("logging_steps", "log_every"), ("save_steps", "checkpoint_every"),
        ("save_total_limit", "keep_checkpoints"), ("num_train_epochs", "epochs"),
    ];

    /// <summary>Section → its renames (TRL name → Sharpen key). Keys with the same name in both (learning_rate, max_steps, beta,
    /// seed, warmup_steps, warmup_ratio, max_grad_norm, weight_decay, temperature, top_p, label_smoothing, mask_truncated_completions) need no entry.</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<(string Trl, string Sharpen)>> Sections { get; } =
        new Dictionary<string, IReadOnlyList<(string, string)>>
        {
            ["sft"] = [.. Schedule, ("gradient_accumulation_steps", "gradient_accumulation"), ("adam_beta1", "beta1"), ("adam_beta2", "beta2"),
                ("max_length", "max_sequence_length"), ("eval_steps", "eval_every")],
            ["preference"] = Schedule,
            ["reward_model"] = Schedule,
            ["offline_pg"] = Schedule,
            ["prm"] = Schedule,
            ["implicit_prm"] = Schedule,
            ["rl"] =
            [
                ("num_generations", "samples_per_prompt"), ("max_completion_length", "max_new_tokens"), ("epsilon", "clip_low"),
                ("epsilon_high", "clip_high"), ("num_iterations", "epochs"), ("save_steps", "checkpoint_every"),
                ("save_total_limit", "keep_checkpoints"), ("eval_steps", "eval_every"),
            ],
        };

    /// <summary>Keys converted by a rule rather than renamed, per section (for the TRL-config reader and the docs).</summary>
    public static IReadOnlyDictionary<string, IReadOnlyList<string>> Converted { get; } = new Dictionary<string, IReadOnlyList<string>>
    {
        ["sft"] = ["lr_scheduler_type", "lr_scheduler_kwargs"],
        ["preference"] = ["lr_scheduler_type", "lr_scheduler_kwargs", "loss_type", "gradient_accumulation_steps"],
        ["reward_model"] = ["lr_scheduler_type", "lr_scheduler_kwargs", "gradient_accumulation_steps"],
        ["offline_pg"] = ["lr_scheduler_type", "lr_scheduler_kwargs", "gradient_accumulation_steps"],
        ["prm"] = ["lr_scheduler_type", "lr_scheduler_kwargs", "gradient_accumulation_steps"],
        ["implicit_prm"] = ["lr_scheduler_type", "lr_scheduler_kwargs", "gradient_accumulation_steps"],
        ["rl"] = ["lr_scheduler_type", "loss_type", "scale_rewards", "per_device_train_batch_size", "gradient_accumulation_steps",
            "steps_per_generation", "generation_batch_size", "max_steps", "warmup_ratio"],
    };

    /// <summary>Rewrites TRL names in <paramref name="root"/> (a recipe as JSON) to Sharpen's, in place; errors name <paramref name="source"/>.</summary>
    public static void Normalize(JsonObject root, string source)
    {
        Rename(root, "output_dir", "output", "", source);
        if (root["model_name_or_path"] is { } modelPath)
        {
            root.Remove("model_name_or_path");
            var model = root["model"] as JsonObject ?? new JsonObject();
            if (model["path"] is { } given && !Same(given, modelPath))
                throw new RecipeException($"{source}: 'model_name_or_path' ({modelPath.ToJsonString()}) is the TRL name of 'model.path' ({given.ToJsonString()}); give one");
            model["path"] = modelPath.DeepClone();
            root["model"] = model;
        }
        foreach (var (name, renames) in Sections)
        {
            if (root[name] is not JsonObject section) continue;
            foreach (var (trl, sharpen) in renames) Rename(section, trl, sharpen, name, source);
            if (name == "rl") Rl(section, source);
            else
            {
                Schedules(section, name, source);
                if (name == "preference") DpoLossType(section, source);
            }
        }
    }

    /// <summary>Moves <paramref name="trl"/> to <paramref name="sharpen"/>; both present with different values is an error.</summary>
    static void Rename(JsonObject o, string trl, string sharpen, string section, string source)
    {
        if (!o.ContainsKey(trl)) return;
        var v = o[trl];
        o.Remove(trl);
        Put(o, sharpen, v, section, source, $"'{Full(section, trl)}' is the TRL name of '{Full(section, sharpen)}'");
    }

    /// <summary>Sets <paramref name="key"/> to <paramref name="v"/>; if it is already there with another value, an error that says <paramref name="why"/>.</summary>
    static void Put(JsonObject o, string key, JsonNode? v, string section, string source, string why)
    {
        if (o.ContainsKey(key) && !Same(o[key], v))
            throw new RecipeException($"{source}: {why}; both are given, with different values ({Text(v)} and {Text(o[key])}); give one");
        o[key] = v?.DeepClone();
    }

    static string Full(string section, string key) => section.Length == 0 ? key : $"{section}.{key}";
    static string Text(JsonNode? v) => v?.ToJsonString() ?? "null";

    /// <summary>Equal values, numbers compared by value (YAML's 8 and 8.0 are the same).</summary>
    static bool Same(JsonNode? a, JsonNode? b) =>
        Number(a) is { } x && Number(b) is { } y ? x == y : JsonNode.DeepEquals(a, b);

    static double? Number(JsonNode? v) =>
        v is JsonValue j && j.GetValueKind() == System.Text.Json.JsonValueKind.Number ? double.Parse(j.ToJsonString(), CultureInfo.InvariantCulture) : null;

    static string? Str(JsonNode? v) => v is JsonValue j && j.TryGetValue(out string? s) ? s : null;

    static double Num(JsonObject o, string key, string section, string source) =>
        Number(o[key]) ?? throw new RecipeException($"{source}: '{section}.{key}' must be a number, got {Text(o[key])}");

    /// <summary>
    /// Step-counted sections: <c>lr_scheduler_type</c> becomes <c>min_lr_ratio</c> (Sharpen's schedule is warm-up then cosine
    /// to <c>min_lr_ratio</c>·peak, so <c>cosine</c> = 0, <c>constant_with_warmup</c> = 1, <c>constant</c> = 1 without warm-up,
    /// <c>cosine_with_min_lr</c> = <c>lr_scheduler_kwargs.min_lr_rate</c>; any other schedule is an error); <c>max_steps</c>
    /// given beside <c>epochs</c> wins (as in transformers); <c>warmup_steps</c> and <c>warmup_ratio</c> together are an error;
    /// <c>gradient_accumulation_steps</c> outside sft multiplies <c>batch_size</c> (the update of one optimizer step is the
    /// same mean over batch × accumulation items).
    /// </summary>
    static void Schedules(JsonObject s, string name, string source)
    {
        Scheduler(s, name, source, hasMinLr: true);
        if (s.ContainsKey("max_steps") && s.ContainsKey("epochs")) s.Remove("epochs");
        if (s.ContainsKey("warmup_steps") && s.ContainsKey("warmup_ratio"))
            throw new RecipeException($"{source}: '{name}.warmup_steps' and '{name}.warmup_ratio' are both given; give one");
        if (name != "sft" && s.ContainsKey("gradient_accumulation_steps"))
        {
            var accumulation = Num(s, "gradient_accumulation_steps", name, source);
            s.Remove("gradient_accumulation_steps");
            if (!s.ContainsKey("batch_size"))
                throw new RecipeException($"{source}: '{name}.gradient_accumulation_steps' needs '{name}.batch_size' (per_device_train_batch_size): " +
                    $"{name} has no micro-batches, its batch_size is the items per optimizer step, set to batch_size × gradient_accumulation_steps");
            s["batch_size"] = (long)(Num(s, "batch_size", name, source) * accumulation);
        }
    }

    static readonly string[] Schedulers = ["cosine", "cosine_with_min_lr", "constant", "constant_with_warmup"];

    static void Scheduler(JsonObject s, string name, string source, bool hasMinLr)
    {
        var kwargs = s["lr_scheduler_kwargs"];
        s.Remove("lr_scheduler_kwargs");
        if (!s.ContainsKey("lr_scheduler_type"))
        {
            if (kwargs is not null) throw new RecipeException($"{source}: '{name}.lr_scheduler_kwargs' needs 'lr_scheduler_type: cosine_with_min_lr'");
            return;
        }
        var type = Str(s["lr_scheduler_type"]);
        s.Remove("lr_scheduler_type");
        string why = $"'{name}.lr_scheduler_type: {type}' sets";
        if (!hasMinLr)
        {
            // RL: constant learning rate after linear warm-up.
            if (type == "constant_with_warmup") return;
            if (type == "constant") { Put(s, "warmup_steps", 0, name, source, $"{why} warmup_steps 0"); return; }
            throw new RecipeException($"{source}: '{name}.lr_scheduler_type' is '{type}'; {name} keeps the learning rate constant after warm-up: " +
                "use constant_with_warmup or constant");
        }
        switch (type)
        {
            case "cosine": Put(s, "min_lr_ratio", 0.0, name, source, $"{why} min_lr_ratio 0"); break;
            case "constant_with_warmup": Put(s, "min_lr_ratio", 1.0, name, source, $"{why} min_lr_ratio 1"); break;
            case "constant":
                Put(s, "min_lr_ratio", 1.0, name, source, $"{why} min_lr_ratio 1");
                Put(s, "warmup_steps", 0, name, source, $"{why} warmup_steps 0");
                break;
            case "cosine_with_min_lr":
                if (Number((kwargs as JsonObject)?["min_lr_rate"]) is not { } rate)
                    throw new RecipeException($"{source}: 'lr_scheduler_type: cosine_with_min_lr' needs 'lr_scheduler_kwargs: {{min_lr_rate: R}}' (Sharpen has no absolute min_lr)");
                Put(s, "min_lr_ratio", rate, name, source, $"{why} min_lr_ratio to lr_scheduler_kwargs.min_lr_rate");
                break;
            default:
                throw new RecipeException($"{source}: '{name}.lr_scheduler_type' is '{type}'; Sharpen's schedule is linear warm-up then cosine decay to " +
                    $"min_lr_ratio × learning_rate, which covers: {string.Join(", ", Schedulers)}");
        }
        if (kwargs is not null && type != "cosine_with_min_lr")
            throw new RecipeException($"{source}: '{name}.lr_scheduler_kwargs' is read only with 'lr_scheduler_type: cosine_with_min_lr'");
    }

    /// <summary>
    /// DPOTrainer's <c>loss_type</c>: <c>sigmoid</c> is <c>dpo</c>, or <c>cdpo</c> when <c>label_smoothing</c> &gt; 0 (TRL's
    /// conservative DPO); <c>ipo</c> is <c>ipo</c> with TRL's β as τ (TRL's IPO loss is (h − 1/(2β))²); <c>robust</c> is
    /// <c>rdpo</c> with <c>label_smoothing</c> as the flip rate. Other loss types are an error.
    /// </summary>
    static void DpoLossType(JsonObject s, string source)
    {
        if (!s.ContainsKey("loss_type")) return;
        var type = Str(s["loss_type"]);
        s.Remove("loss_type");
        string why = $"'preference.loss_type: {type}'";
        switch (type)
        {
            case "sigmoid":
                var smoothing = Number(s["label_smoothing"]) ?? 0;
                Put(s, "loss", smoothing > 0 ? "cdpo" : "dpo", "preference", source, $"{why} is loss {(smoothing > 0 ? "cdpo (label_smoothing > 0)" : "dpo")}");
                break;
            case "ipo":
                Put(s, "loss", "ipo", "preference", source, $"{why} is loss ipo");
                if (s.ContainsKey("beta")) { var beta = s["beta"]; s.Remove("beta"); Put(s, "tau", beta, "preference", source, $"{why} reads beta as IPO's tau"); }
                break;
            case "robust":
                Put(s, "loss", "rdpo", "preference", source, $"{why} is loss rdpo");
                if (s.ContainsKey("label_smoothing")) { var e = s["label_smoothing"]; s.Remove("label_smoothing"); Put(s, "flip_rate", e, "preference", source, $"{why} reads label_smoothing as rDPO's flip_rate"); }
                break;
            default:
                throw new RecipeException($"{source}: 'preference.loss_type' is '{type}'; of TRL's DPO loss types Sharpen has sigmoid (dpo, cdpo), ipo and robust (rdpo); " +
                    $"its own losses go in 'preference.loss': {string.Join(", ", PreferenceLosses.Names)}");
        }
    }

    /// <summary>
    /// GRPOConfig in an <c>rl</c> section. <c>loss_type</c>: grpo → aggregation seq_mean_token_mean, bnpo and dapo →
    /// token_mean, dr_grpo → seq_mean_token_sum_norm. <c>scale_rewards</c>: true → group, false → none (and scale_by_std false); group, batch and none are Sharpen's own values.
    /// Batch sizes count completions: one generation round makes <c>per_device_train_batch_size × steps_per_generation</c>
    /// completions (<c>generation_batch_size</c> if given; <c>steps_per_generation</c> defaults to
    /// <c>gradient_accumulation_steps</c>), so prompts_per_iteration = that / num_generations; an optimizer step takes
    /// <c>per_device_train_batch_size × gradient_accumulation_steps</c> completions (mini_batch_size, 0 when it is the whole
    /// round) and a forward pass <c>per_device_train_batch_size</c> (micro_batch_size). <c>max_steps</c> counts optimizer steps:
    /// iterations = ⌈max_steps / steps per iteration⌉, steps per iteration = epochs (num_iterations) × rounds ÷ mini-batch.
    /// <c>warmup_ratio</c> = ⌈ratio × iterations × steps per iteration⌉ warm-up steps.
    /// </summary>
    static void Rl(JsonObject s, string source)
    {
        Scheduler(s, "rl", source, hasMinLr: false);
        if (s.ContainsKey("loss_type"))
        {
            var type = Str(s["loss_type"]);
            s.Remove("loss_type");
            var agg = type switch
            {
                "grpo" => "seq_mean_token_mean", "bnpo" or "dapo" => "token_mean", "dr_grpo" => "seq_mean_token_sum_norm",
                _ => throw new RecipeException($"{source}: 'rl.loss_type' is '{type}'; known: grpo, bnpo, dapo, dr_grpo (Sharpen's own key is 'rl.aggregation')"),
            };
            Put(s, "aggregation", agg, "rl", source, $"'rl.loss_type: {type}' is aggregation {agg}");
        }
        if (s.ContainsKey("scale_rewards") && s["scale_rewards"] is JsonValue sv && sv.TryGetValue(out bool scale))
        {
            // TRL's boolean form; its strings group | batch | none are Sharpen's own rl.scale_rewards values and stay as they are.
            s["scale_rewards"] = scale ? "group" : "none";
            if (!scale) Put(s, "scale_by_std", false, "rl", source, "'rl.scale_rewards: false' is scale_by_std false");
        }

        string algorithm = Str(s["algorithm"]) ?? "grpo";
        Training.Rl.RlOptions preset;
        try { preset = Training.Rl.RlOptions.For(algorithm); }
        catch (ArgumentException e) { throw new RecipeException($"{source}: 'rl.algorithm': {e.Message}"); }
        int Int(string key, int fallback) => s.ContainsKey(key) ? (int)Num(s, key, "rl", source) : fallback;

        if (s.ContainsKey("per_device_train_batch_size") || s.ContainsKey("generation_batch_size") || s.ContainsKey("steps_per_generation")
            || s.ContainsKey("gradient_accumulation_steps"))
        {
            if (!s.ContainsKey("per_device_train_batch_size"))
                throw new RecipeException($"{source}: GRPO batch keys in 'rl' need 'per_device_train_batch_size' (completions per forward pass)");
            int perDevice = Int("per_device_train_batch_size", 0), accumulation = Int("gradient_accumulation_steps", 1);
            int stepsPerGeneration = Int("steps_per_generation", accumulation);
            int generation = Int("generation_batch_size", perDevice * stepsPerGeneration);
            int groups = Int("samples_per_prompt", preset.SamplesPerPrompt);
            foreach (var k in new[] { "per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation", "generation_batch_size" }) s.Remove(k);
            if (perDevice <= 0 || accumulation <= 0 || generation <= 0 || groups <= 0)
                throw new RecipeException($"{source}: GRPO batch sizes in 'rl' must be positive");
            if (generation % groups != 0)
                throw new RecipeException($"{source}: the generation batch ({generation} completions) must be a multiple of num_generations ({groups})");
            int perStep = perDevice * accumulation;
            if (generation % perStep != 0)
                throw new RecipeException($"{source}: the generation batch ({generation} completions) must be a multiple of per_device_train_batch_size × gradient_accumulation_steps ({perStep})");
            string why = "the GRPO batch keys (per_device_train_batch_size, gradient_accumulation_steps, steps_per_generation, generation_batch_size) set";
            Put(s, "prompts_per_iteration", generation / groups, "rl", source, $"{why} prompts_per_iteration {generation / groups}");
            Put(s, "mini_batch_size", perStep == generation ? 0 : perStep, "rl", source, $"{why} mini_batch_size");
            Put(s, "micro_batch_size", perDevice, "rl", source, $"{why} micro_batch_size {perDevice}");
        }

        if (s.ContainsKey("max_steps") || s.ContainsKey("warmup_ratio"))
        {
            int prompts = Int("prompts_per_iteration", preset.PromptsPerIteration), groups = Int("samples_per_prompt", preset.SamplesPerPrompt);
            int mini = Int("mini_batch_size", preset.MiniBatchSize), epochs = Int("epochs", preset.Epochs);
            int round = prompts * groups;
            int stepsPerIteration = epochs * (mini <= 0 ? 1 : (round + mini - 1) / mini);
            if (s.ContainsKey("max_steps"))
            {
                int maxSteps = (int)Num(s, "max_steps", "rl", source);
                s.Remove("max_steps");
                int iterations = Math.Max(1, (maxSteps + stepsPerIteration - 1) / stepsPerIteration);
                Put(s, "iterations", iterations, "rl", source,
                    $"'rl.max_steps: {maxSteps}' is {iterations} iterations of {stepsPerIteration} optimizer steps");
            }
            if (s.ContainsKey("warmup_ratio"))
            {
                double ratio = Num(s, "warmup_ratio", "rl", source);
                s.Remove("warmup_ratio");
                if (!(ratio >= 0 && ratio <= 1)) throw new RecipeException($"{source}: 'rl.warmup_ratio' must be in [0, 1], got {ratio.ToString(CultureInfo.InvariantCulture)}");
                int total = Int("iterations", preset.Iterations) * stepsPerIteration;
                Put(s, "warmup_steps", Training.EpochSteps.Warmup(ratio, total), "rl", source, $"'rl.warmup_ratio' sets warmup_steps");
            }
        }
    }
}
