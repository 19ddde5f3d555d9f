using System.Text.Json.Nodes;
using Sharpen.Training.Preference;
using Sharpen.Training.RewardModels;
using Sharpen.Training.Rl;
using Sharpen.Training.Sft;

namespace Sharpen.Recipes;

/// <summary>
/// A TRL config file (the flat YAML that <c>trl sft|dpo|grpo|reward --config</c> reads: TrainingArguments, the trainer's
/// config, ModelConfig and ScriptArguments in one mapping) as a Sharpen <see cref="Recipe"/>. Each key goes where it
/// means the same thing: the trainer's section (<see cref="TrlNames"/> renames it), the model (<c>model_name_or_path</c>,
/// the LoRA keys of ModelConfig), the data (<c>dataset_name</c>, a local JSONL file or a folder of
/// <c>{split}.jsonl</c>), the output folder and seed. Sharpen's own section keys and its top-level sections
/// (<c>task</c>, <c>rewards</c>, <c>eval</c>, <c>model</c>, <c>data</c>) may be mixed in. A TRL key Sharpen does not
/// implement is an error listing every such key; a key neither TRL nor Sharpen knows is an error with the nearest name.
/// </summary>
public static class TrlConfig
{
    /// <summary><c>--trainer</c> values → (recipe kind, section).</summary>
    public static IReadOnlyDictionary<string, (string Kind, string Section)> Trainers { get; } = new Dictionary<string, (string, string)>
    {
        ["sft"] = ("sft", "sft"), ["dpo"] = ("preference", "preference"), ["reward"] = ("reward_model", "reward_model"), ["grpo"] = ("rl", "rl"),
    };

    /// <summary>Keys TRL has whose value, when it is one of these, changes nothing in a Sharpen run (null = any value).</summary>
    static readonly Dictionary<string, string[]?> Harmless = new()
    {
        ["do_train"] = ["true"], ["do_eval"] = ["false"], ["push_to_hub"] = ["false"], ["bf16"] = ["false"], ["fp16"] = ["false"],
        ["tf32"] = ["false"], ["gradient_checkpointing"] = ["false"], ["use_cpu"] = null, ["disable_tqdm"] = null, ["run_name"] = null,
        ["logging_strategy"] = ["\"steps\""], ["save_strategy"] = ["\"steps\""], ["report_to"] = ["\"none\"", "[]", "\"tensorboard\"", "[\"tensorboard\"]"], ["use_peft"] = ["false"],
        ["dataset_text_field"] = ["\"text\""], ["overwrite_output_dir"] = null, ["log_level"] = null, ["remove_unused_columns"] = null,
        ["dataloader_num_workers"] = null, ["dataset_num_proc"] = null, ["torch_dtype"] = ["\"float32\""], ["dtype"] = ["\"float32\""],
        ["trust_remote_code"] = null, ["logging_first_step"] = null,
    };

    /// <summary>Names TRL (0.2x) and transformers' TrainingArguments define that Sharpen does not implement (or not under that
    /// trainer); giving one is an error naming it.</summary>
    public static IReadOnlySet<string> Unimplemented { get; } = new HashSet<string>(
    [
        // TrainingArguments
        "num_train_epochs", "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "max_steps", "warmup_steps",
        "warmup_ratio", "max_grad_norm", "lr_scheduler_type", "lr_scheduler_kwargs", "logging_steps", "save_steps", "save_total_limit",
        "do_predict", "eval_strategy", "evaluation_strategy", "prediction_loss_only", "per_device_eval_batch_size", "eval_accumulation_steps",
        "eval_delay", "torch_empty_cache_steps", "adam_epsilon", "log_level_replica", "log_on_each_node", "logging_dir", "logging_nan_inf_filter",
        "save_safetensors", "save_on_each_node", "save_only_model", "restore_callback_states_from_checkpoint", "data_seed", "jit_mode_eval",
        "fp16_opt_level", "half_precision_backend", "bf16_full_eval", "fp16_full_eval", "local_rank", "ddp_backend", "tpu_num_cores",
        "dataloader_drop_last", "past_index", "label_names", "load_best_model_at_end", "metric_for_best_model", "greater_is_better",
        "ignore_data_skip", "fsdp", "fsdp_config", "deepspeed", "accelerator_config", "label_smoothing_factor", "debug", "optim", "optim_args",
        "adafactor", "group_by_length", "length_column_name", "ddp_find_unused_parameters", "ddp_bucket_cap_mb", "ddp_broadcast_buffers",
        "dataloader_pin_memory", "dataloader_persistent_workers", "dataloader_prefetch_factor", "skip_memory_metrics", "resume_from_checkpoint",
        "hub_model_id", "hub_strategy", "hub_token", "hub_private_repo", "hub_always_push", "gradient_checkpointing_kwargs",
        "include_inputs_for_metrics", "include_for_metrics", "eval_do_concat_batches", "auto_find_batch_size", "full_determinism", "torchdynamo",
        "ray_scope", "ddp_timeout", "torch_compile", "torch_compile_backend", "torch_compile_mode", "include_tokens_per_second",
        "include_num_input_tokens_seen", "neftune_noise_alpha", "optim_target_modules", "batch_eval_metrics", "eval_on_start", "use_liger_kernel",
        "eval_use_gather_object", "average_tokens_across_devices", "eval_steps", "weight_decay", "adam_beta1", "adam_beta2",
        // ModelConfig and ScriptArguments
        "model_revision", "attn_implementation", "lora_modules_to_save", "lora_task_type", "use_rslora", "use_dora", "load_in_8bit", "load_in_4bit",
        "bnb_4bit_quant_type", "use_bnb_nested_quant", "lora_target_parameters", "dataset_config", "dataset_streaming",
        "gradient_checkpointing_use_reentrant", "ignore_bias_buffers", "reward_funcs",
        // SFTConfig, DPOConfig, RewardConfig, GRPOConfig
        "model_init_kwargs", "chat_template_path", "dataset_kwargs", "eos_token", "pad_token", "max_length", "max_seq_length", "packing",
        "packing_strategy", "padding_free", "pad_to_multiple_of", "eval_packing",
        "activation_offloading", "ref_model_init_kwargs", "model_adapter_name", "ref_adapter_name", "force_use_ref_model", "disable_dropout",
        "use_logits_to_keep", "padding_value", "label_pad_token_id", "max_prompt_length", "max_completion_length", "truncation_mode",
        "precompute_ref_log_probs", "precompute_ref_batch_size", "tools", "loss_type", "use_liger_loss", "base_model_attribute_name", "beta",
        "f_divergence_type", "f_alpha_divergence_coef", "reference_free", "label_smoothing", "use_weighting", "rpo_alpha", "ld_alpha",
        "discopop_tau", "loss_weights", "sync_ref_model", "ref_model_mixup_alpha", "ref_model_sync_steps", "generate_during_eval",
        "center_rewards_coefficient", "cast_lm_head_to_fp32", "num_generations", "ds3_gather_for_generation", "shuffle_dataset",
        "generation_batch_size", "steps_per_generation", "temperature", "top_p", "top_k", "min_p", "generation_kwargs", "chat_template_kwargs",
        "repetition_penalty", "use_transformers_paged", "cache_implementation", "use_vllm", "vllm_mode", "vllm_server_base_url",
        "vllm_server_host", "vllm_server_port", "vllm_server_timeout", "vllm_gpu_memory_utilization", "vllm_tensor_parallel_size",
        "vllm_model_impl", "vllm_enable_sleep_mode", "vllm_guided_decoding_regex", "vllm_importance_sampling_correction",
        "vllm_importance_sampling_cap", "num_iterations", "epsilon", "delta", "epsilon_high", "importance_sampling_level", "reward_weights",
        "scale_rewards", "mask_truncated_completions", "top_entropy_quantile", "log_completions", "num_completions_to_print",
        "wandb_log_unique_prompts", "steps_per_generation",
    ]);

    /// <summary>Keys this reader places itself (not in a trainer section).</summary>
    static readonly string[] Placed =
    [
        "model_name_or_path", "output_dir", "seed", "dataset_name", "dataset_train_split", "dataset_test_split", "reward_model_name_or_path",
        "use_peft", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
    ];

    static readonly string[] SharpenSections = ["task", "rewards", "eval", "model", "data"];

    /// <summary>Reads <paramref name="path"/> as a TRL config for <paramref name="trainer"/> (grpo, sft, dpo, reward).</summary>
    public static Recipe Load(string path, string trainer)
    {
        if (!File.Exists(path)) throw new RecipeException($"{path}: TRL config not found");
        var node = YamlToJson.Convert(File.ReadAllText(path), path) as JsonObject
            ?? throw new RecipeException($"{path}: a TRL config is a mapping of keys to values");
        return Recipe.FromJson(Translate(node, trainer, path, Path.GetDirectoryName(Path.GetFullPath(path))!), path);
    }

    /// <summary>The recipe (as JSON, before <see cref="TrlNames.Normalize"/>) a flat TRL config stands for. Relative
    /// dataset paths are tried against the working directory, then <paramref name="baseDir"/> (the config's folder).</summary>
    public static JsonObject Translate(JsonObject flat, string trainer, string source, string? baseDir = null)
    {
        if (!Trainers.TryGetValue(trainer, out var t))
            throw new RecipeException($"{source}: --trainer is '{trainer}'; known: {string.Join(", ", Trainers.Keys)}");
        var sectionType = t.Section switch
        {
            "sft" => typeof(SftOptions), "preference" => typeof(PreferenceOptions), "reward_model" => typeof(RewardModelOptions), _ => typeof(RlOptions),
        };
        var options = new System.Text.Json.JsonSerializerOptions(Recipe.Json) { TypeInfoResolver = new System.Text.Json.Serialization.Metadata.DefaultJsonTypeInfoResolver() };
        var sectionKeys = options.GetTypeInfo(sectionType).Properties.Select(p => p.Name).ToHashSet();
        var trlKeys = TrlNames.Sections[t.Section].Select(a => a.Trl).Concat(TrlNames.Converted[t.Section]).ToHashSet();

        var recipe = new JsonObject { ["kind"] = t.Kind };
        var section = new JsonObject();
        if (trainer == "grpo") section["algorithm"] = "grpo";
        var model = new JsonObject();
        var lora = new JsonObject();
        var data = new JsonObject();
        var unimplemented = new List<string>();
        var unknown = new List<string>();
        foreach (var (key, value) in flat)
        {
            var v = value?.DeepClone();
            switch (key)
            {
                case "model_name_or_path": model["path"] = v; continue;
                case "output_dir": recipe["output"] = v; continue;
                case "seed": recipe["seed"] = v; section["seed"] = v?.DeepClone(); continue;
                case "dataset_name" or "dataset_train_split" or "dataset_test_split": continue;
                case "reward_model_name_or_path" when trainer == "grpo":
                    recipe["rewards"] = new JsonArray(new JsonObject { ["model"] = v }); continue;
                case "lora_r": lora["r"] = v; continue;
                case "lora_alpha": lora["alpha"] = v; continue;
                case "lora_dropout": lora["dropout"] = v; continue;
                case "lora_target_modules": lora["target_modules"] = v; continue;
                case "use_peft" when v is JsonValue b && b.TryGetValue(out bool on) && on: continue;
                case "model" or "data" when v is JsonObject o:
                    foreach (var (k, x) in o) (key == "model" ? model : data)[k] = x?.DeepClone();
                    continue;
            }
            if (SharpenSections.Contains(key) || key == t.Section) { if (key == t.Section && v is JsonObject o) foreach (var (k, x) in o) section[k] = x?.DeepClone(); else recipe[key] = v; continue; }
            if (sectionKeys.Contains(key) || trlKeys.Contains(key)) { section[key] = v; continue; }
            if (Harmless.TryGetValue(key, out var ok))
            {
                if (ok is null || ok.Contains(value?.ToJsonString() ?? "null")) continue;
                unimplemented.Add($"{key}: {value?.ToJsonString()}");
                continue;
            }
            if (Unimplemented.Contains(key) || Placed.Contains(key)) unimplemented.Add(key);
            else unknown.Add(key);
        }
        if (unknown.Count > 0)
        {
            var known = Unimplemented.Concat(Harmless.Keys).Concat(Placed).Concat(sectionKeys).Concat(trlKeys).Concat(SharpenSections);
            throw new RecipeException($"{source}: {UnknownKey.Message("", unknown[0], known).Replace("unknown key", "unknown key (neither TRL's nor Sharpen's)")}" +
                (unknown.Count > 1 ? $" (also unknown: {string.Join(", ", unknown.Skip(1))})" : ""));
        }
        if (unimplemented.Count > 0)
            throw new RecipeException($"{source}: TRL keys that Sharpen's {trainer} does not implement: {string.Join(", ", unimplemented)}; " +
                "remove them (README, 'Coming from TRL', lists what is supported)");

        if (flat["dataset_name"] is { } dn)
        {
            var name = dn is JsonValue dv && dv.TryGetValue(out string? s) ? s : throw new RecipeException($"{source}: 'dataset_name' must be a path");
            string Split(string key, string fallback) => flat[key] is JsonValue sv && sv.TryGetValue(out string? x) ? x : fallback;
            data["train"] = Dataset(name, Split("dataset_train_split", "train"), source, baseDir, required: true);
            if (flat.ContainsKey("dataset_test_split") && Dataset(name, Split("dataset_test_split", "test"), source, baseDir, required: true) is { } test)
                data["test"] = test;
        }
        else if (flat.ContainsKey("dataset_train_split") || flat.ContainsKey("dataset_test_split"))
            throw new RecipeException($"{source}: 'dataset_train_split'/'dataset_test_split' need 'dataset_name'");
        bool peft = flat["use_peft"] is JsonValue pv && pv.TryGetValue(out bool usePeft) && usePeft;
        if (peft)
        {
            // ModelConfig's defaults (r 16, alpha 32, dropout 0.05); no target modules = PEFT's default for Llama/Qwen2/Mistral, q_proj and v_proj.
            lora["r"] ??= 16; lora["alpha"] ??= 32; lora["dropout"] ??= 0.05; lora["target_modules"] ??= new JsonArray("q_proj", "v_proj");
            model["lora"] = lora;
        }
        else if (lora.Count > 0)
            throw new RecipeException($"{source}: LoRA keys ({string.Join(", ", flat.Select(kv => kv.Key).Where(k => k.StartsWith("lora_", StringComparison.Ordinal)))}) without 'use_peft: true'; " +
                "TRL ignores them then: add 'use_peft: true' or remove them");
        // TRL's SFTConfig defaults assistant_only_loss to false: a "messages" row trains its whole text (Sharpen's own default is the last assistant turn).
        if (trainer == "sft" && !section.ContainsKey("assistant_only_loss")) section["assistant_only_loss"] = false;
        if (model.Count > 0) recipe["model"] = model;
        if (data.Count > 0) recipe["data"] = data;
        recipe[t.Section] = section;
        return recipe;
    }

    /// <summary>A local dataset: a JSONL file (the train split), or a folder holding <c>{split}.jsonl</c>.</summary>
    static string? Dataset(string name, string split, string source, string? baseDir, bool required)
    {
        foreach (var root in new[] { "", baseDir ?? "" }.Distinct())
        {
            var p = root.Length == 0 ? name : Path.Combine(root, name);
            if (File.Exists(p)) return split == "train" ? Path.GetFullPath(p)
                : throw new RecipeException($"{source}: 'dataset_name' is a file ({name}), which is the train split only; make it a folder with {split}.jsonl");
            if (Directory.Exists(p))
            {
                var f = Path.Combine(p, split + ".jsonl");
                if (File.Exists(f)) return Path.GetFullPath(f);
                throw new RecipeException($"{source}: 'dataset_name' folder {name} has no {split}.jsonl (split '{split}')");
            }
        }
        if (!required) return null;
        throw new RecipeException($"{source}: 'dataset_name' is '{name}', which is not a local JSONL file or folder; Sharpen reads datasets from disk " +
            "(save the Hugging Face dataset as JSONL, e.g. dataset.to_json(\"train.jsonl\"), and give its path)");
    }
}
