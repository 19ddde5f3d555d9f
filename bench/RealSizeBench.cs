using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Torch;
using Sharpen.Training;
using Sharpen.Training.Rl;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Bench;

/// <summary>
/// A checkpoint of a real model's size (issue 18, item 8): random weights in Qwen2.5-0.5B's exact shapes (its config.json:
/// hidden 896, 24 layers, 14 query / 2 key-value heads of 64, intermediate 4864, vocabulary 151,936, tied embeddings, q/k/v
/// biases, rope_theta 10⁶), stored as BF16 safetensors in shards of at most <see cref="ShardBytes"/> with
/// <c>model.safetensors.index.json</c>, beside a synthetic byte-level BPE <c>tokenizer.json</c> of Qwen2's size and layout
/// (256 byte tokens, 151,387 merges, the 22 special tokens at Qwen2's ids, Qwen2's split pattern). A child process then
/// loads it, generates greedily, and takes LoRA GRPO iterations; each phase's time and the peak RSS up to its end are
/// measured in that child, so the peak is the model's own and not the writer's.
/// </summary>
public static class RealSizeBench
{
    /// <summary>Largest stored shard, bytes (Hugging Face's <c>max_shard_size</c>). Qwen2.5-0.5B in BF16 is ~0.99 GB: 4 shards.</summary>
    public const long ShardBytes = 300L << 20;

    /// <summary>Qwen2.5-0.5B's config.json as published (the keys that shape the forward pass, and a few harmless ones).</summary>
    public const string Qwen25HalfBConfig = """
        {
          "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
          "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
          "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
          "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
          "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
          "use_cache": true, "use_sliding_window": false, "vocab_size": 151936
        }
        """;

    /// <summary>Qwen2's special tokens, ids 151643 on.</summary>
    static readonly string[] Specials =
    [
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>", "<|box_end|>",
        "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
        "<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
    ];

    const int RegularTokens = 151643;
    const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Writes the checkpoint, runs the child, deletes the checkpoint (unless <paramref name="keep"/>), returns the result.</summary>
    public static JsonObject Run(Action<string> log, string workDir, string childCommand, bool quick = false, bool keep = false)
    {
        var modelDir = Path.Combine(workDir, "qwen2.5-0.5b-shapes");
        var childDir = Path.Combine(workDir, "child");
        foreach (var d in new[] { modelDir, childDir }) if (Directory.Exists(d)) Directory.Delete(d, recursive: true);
        Directory.CreateDirectory(childDir);
        try
        {
            var sw = Stopwatch.StartNew();
            var config = ModelConfig.Parse(Qwen25HalfBConfig, "Qwen2.5-0.5B config.json");
            using (var model = new CausalLM(config, seed: 1))
            {
                log($"real-size: {model.ParameterCount():N0} parameters initialised in {sw.Elapsed.TotalSeconds:F1} s; writing BF16 shards to {modelDir}");
                HfCheckpoint.Save(modelDir, model, storeAs: ScalarType.BFloat16, maxShardBytes: ShardBytes,
                    generation: new GenerationConfig(151643, [151645, 151643], 151643, DoSample: true, Temperature: 0.7, TopP: 0.8, TopK: 20));
            }
            WriteTokenizer(modelDir);
            var writeSeconds = sw.Elapsed.TotalSeconds;
            var files = new DirectoryInfo(modelDir).GetFiles().OrderBy(f => f.Name, StringComparer.Ordinal)
                .Select(f => (JsonNode)new JsonObject { ["file"] = f.Name, ["mb"] = Math.Round(f.Length / 1048576.0, 1) }).ToArray();
            log($"real-size: checkpoint written in {writeSeconds:F1} s: {string.Join(", ", files.Select(f => $"{f!["file"]} {f["mb"]} MB"))}");
            GC.Collect();
            ProcessMemory.Trim();

            var psi = new ProcessStartInfo(childCommand.Split(' ')[0]) { RedirectStandardOutput = true, RedirectStandardError = true };
            foreach (var a in childCommand.Split(' ').Skip(1)) psi.ArgumentList.Add(a);
            foreach (var a in new[] { "bench", "real-size-one", "--model", modelDir, "--work", childDir }.Concat(quick ? ["--quick"] : Array.Empty<string>()))
                psi.ArgumentList.Add(a);
            using var p = Process.Start(psi)!;
            var stderr = p.StandardError.ReadToEndAsync();
            while (p.StandardOutput.ReadLine() is { } line) log("  " + line);
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"real-size child failed ({p.ExitCode}): {stderr.Result}");
            var result = JsonNode.Parse(File.ReadAllText(Path.Combine(childDir, "real-size.json")))!.AsObject();
            result["benchmark"] = "real-size";
            result["quick"] = quick;
            result["checkpoint"] = new JsonObject
            {
                ["shapes_of"] = "Qwen/Qwen2.5-0.5B", ["stored"] = "BF16 safetensors, sharded", ["max_shard_mb"] = ShardBytes >> 20,
                ["write_seconds"] = Math.Round(writeSeconds, 1), ["files"] = new JsonArray(files),
                ["tokenizer"] = $"synthetic byte-level BPE: 256 bytes + {RegularTokens - 256} merges + {Specials.Length} special tokens (Qwen2's ids and split pattern)",
            };
            return result;
        }
        finally
        {
            if (!keep)
                foreach (var d in new[] { modelDir, childDir }) if (Directory.Exists(d)) Directory.Delete(d, recursive: true);
        }
    }

    /// <summary>The child: load, generate, LoRA GRPO; writes real-size.json into <paramref name="workDir"/>.</summary>
    public static void RunChild(string modelDir, string workDir, bool quick)
    {
        var row = new JsonObject { ["threads"] = get_num_threads() };
        void Phase(string name, double seconds)
        {
            row[$"{name}_seconds"] = Math.Round(seconds, 2);
            row[$"{name}_peak_rss_mb"] = Mb(ProcessMemory.PeakResidentBytes());
            row[$"{name}_end_rss_mb"] = Mb(ProcessMemory.ResidentBytes());
            Console.WriteLine($"{name}: {seconds:F2} s, peak RSS {row[$"{name}_peak_rss_mb"]} MB, RSS {row[$"{name}_end_rss_mb"]} MB");
        }
        row["start_rss_mb"] = Mb(ProcessMemory.ResidentBytes());

        // Where the load's memory goes: the randomly initialised float32 model alone, then the shards read in their stored
        // BF16 beside it (each measured from a reset peak; both freed before the real load).
        var parts = new JsonObject();
        var sw = Stopwatch.StartNew();
        ProcessMemory.ResetPeak();
        var config = ModelConfig.Load(Path.Combine(modelDir, "config.json"));
        var bare = new CausalLM(config with { TorchDtype = "float32" });
        parts["init_model_seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2);
        parts["init_model_peak_rss_mb"] = Mb(ProcessMemory.PeakResidentBytes());
        sw.Restart();
        using (NewDisposeScope())
        {
            var stored = Safetensors.LoadSharded(Path.Combine(modelDir, HfCheckpoint.IndexFile), (ScalarType?)null);
            parts["read_shards_seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2);
            parts["read_shards_peak_rss_mb"] = Mb(ProcessMemory.PeakResidentBytes());
            sw.Restart();
            bare.LoadWeights(stored, modelDir);
            parts["copy_into_model_seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2);
            parts["copy_into_model_peak_rss_mb"] = Mb(ProcessMemory.PeakResidentBytes());
        }
        bare.Dispose();
        GC.Collect();
        ProcessMemory.Trim();
        row["load_parts"] = parts;
        Console.WriteLine($"load parts: {parts.ToJsonString()}");
        ProcessMemory.ResetPeak();

        // Load: config, BF16 shards → float32 weights, tokenizer.
        sw.Restart();
        var loaded = HfCheckpoint.Load(modelDir, requireTokenizer: true);
        Phase("load", sw.Elapsed.TotalSeconds);
        var model = loaded.Model;
        var tokenizer = loaded.Tokenizer!;
        row["parameters"] = model.ParameterCount();
        row["weights_dtype"] = model.parameters().First().dtype.ToString();
        row["tokenizer_vocab"] = tokenizer.VocabSize;
        sw.Restart();
        TokenizerFiles.Load(modelDir);
        row["tokenizer_load_seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2);

        // Generate: greedy, EOS ignored, so every sequence yields exactly newTokens tokens.
        int newTokens = quick ? 8 : 32;
        var engine = new RolloutEngine(model, tokenizer);
        var texts = new[]
        {
            "Write a short story about a robot who learns to paint, in the style of a fairy tale.",
            "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
            "The capital of France is Paris. The capital of Germany is Berlin. The capital of Italy is",
            "Translate to German: The weather is nice today and we are going for a walk in the park.",
        };
        var prompts = texts.Select(t => (IReadOnlyList<int>)tokenizer.Encode(t)).ToList();
        row["prompt_tokens"] = new JsonArray(prompts.Select(p => (JsonNode)p.Count).ToArray());
        var o = new SamplingOptions { Temperature = 0, MaxNewTokens = newTokens, StopAtEos = false };
        engine.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 2 });   // warm-up
        var gen = new JsonArray();
        sw.Restart();
        foreach (var batch in new[] { 1, 4 })
        {
            var t = Stopwatch.StartNew();
            var outs = engine.Generate(prompts.Take(batch).ToList(), o);
            var seconds = t.Elapsed.TotalSeconds;
            var tokens = outs.Sum(r => r.CompletionIds.Length);
            gen.Add(new JsonObject
            {
                ["batch"] = batch, ["new_tokens"] = tokens, ["seconds"] = Math.Round(seconds, 2), ["tokens_per_second"] = Math.Round(tokens / seconds, 2),
                ["sample"] = tokenizer.Decode(outs[0].CompletionIds.Take(12).ToList()),
            });
            Console.WriteLine($"generate batch {batch}: {tokens} tokens in {seconds:F2} s = {tokens / seconds:F2} tokens/s");
        }
        row["generate"] = gen;
        Phase("generate", sw.Elapsed.TotalSeconds);

        // LoRA GRPO: r 8 on all seven projections, β 0.04 (the reference is the base, adapters off), a reward that varies.
        model.AddLora(new LoraOptions { R = 8, Alpha = 16 }, seed: 1);
        var options = new RlOptions
        {
            Algorithm = "grpo", Iterations = quick ? 1 : 2, PromptsPerIteration = 2, SamplesPerPrompt = 4, MaxNewTokens = quick ? 8 : 16,
            Temperature = 1.0, LearningRate = 1e-4, Beta = 0.04, MicroBatchSize = 8, EvalEvery = 0, EvalProblems = 0, Seed = 1,
        };
        var rlPrompts = texts.Select(t => new RlPrompt(t, new Dictionary<string, string>())).ToList();
        var reward = new DelegateReward("chars_mod_7", c => c.Completion.Length % 7 / 6.0);
        var outDir = Path.Combine(workDir, "grpo");
        sw.Restart();
        new RlTrainer(model, tokenizer, options, [new WeightedReward(reward)]).Run(rlPrompts, outDir);
        var grpoSeconds = sw.Elapsed.TotalSeconds;
        var metrics = new RunLog(outDir, append: true).ReadMetrics();
        string[] timings = ["generate", "score", "reference", "advantage", "update_actor", "update_critic"];
        row["grpo"] = new JsonArray(metrics.Select(m =>
        {
            var it = new JsonObject { ["iteration"] = m["step"]?.GetValue<int>() ?? 0 };
            foreach (var part in timings) it[part + "_seconds"] = m[$"timing/{part}"]?.GetValue<double>();
            it["step_seconds"] = Math.Round(timings.Sum(part => m[$"timing/{part}"]?.GetValue<double>() ?? 0), 2);
            it["completion_tokens"] = m["completion_length"]?.GetValue<double>() is { } l ? Math.Round(l * options.PromptsPerIteration * options.SamplesPerPrompt) : null;
            it["loss"] = m["loss"]?.GetValue<double>();
            it["reward_mean"] = m["reward_mean"]?.GetValue<double>();
            it["generation_tokens_per_s"] = m["generation_tokens_per_s"]?.GetValue<double>();
            it["train_tokens_per_s"] = m["train_tokens_per_s"]?.GetValue<double>();
            return (JsonNode)it;
        }).ToArray());
        row["grpo_rollouts_per_iteration"] = options.PromptsPerIteration * options.SamplesPerPrompt;
        row["grpo_max_new_tokens"] = options.MaxNewTokens;
        row["lora_parameters"] = model.AdapterWeights().Sum(w => w.Tensor.numel());
        Phase("grpo", grpoSeconds);   // includes the final checkpoint (merged float32 weights + the adapter)
        row["peak_rss_mb"] = Mb(ProcessMemory.PeakResidentBytes());
        model.Dispose();
        Directory.Delete(outDir, recursive: true);
        GC.Collect();
        ProcessMemory.Trim();

        // BF16 compute: the same checkpoint with every parameter cast to bfloat16 (what it takes in memory, and its speed).
        var bf = new JsonObject();
        try
        {
            ProcessMemory.ResetPeak();
            sw.Restart();
            using var m16 = HfCheckpoint.Load(modelDir).Model;
            m16.to(ScalarType.BFloat16);
            bf["load_seconds"] = Math.Round(sw.Elapsed.TotalSeconds, 2);
            var e16 = new RolloutEngine(m16, tokenizer);
            e16.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = 2 });
            var t = Stopwatch.StartNew();
            var outs = e16.Generate(prompts.Take(1).ToList(), o with { MaxNewTokens = quick ? 4 : 16 });
            var tokens = outs.Sum(r => r.CompletionIds.Length);
            bf["batch"] = 1;
            bf["tokens_per_second"] = Math.Round(tokens / t.Elapsed.TotalSeconds, 2);
            bf["peak_rss_mb"] = Mb(ProcessMemory.PeakResidentBytes());
            bf["end_rss_mb"] = Mb(ProcessMemory.ResidentBytes());
            Console.WriteLine($"bf16 generate batch 1: {bf["tokens_per_second"]} tokens/s, peak RSS since reset {bf["peak_rss_mb"]} MB");
        }
        catch (Exception e)
        {
            bf["error"] = "CausalLM computes in float32; casting its parameters with Module.to(BFloat16) then failed: " + e.GetType().Name + ": " + e.Message.Split('\n')[0];
            Console.WriteLine($"bf16 compute failed: {bf["error"]}");
        }
        row["bf16_compute"] = bf;
        File.WriteAllText(Path.Combine(workDir, "real-size.json"), row.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>
    /// A synthetic byte-level BPE tokenizer.json of Qwen2's size: the 256 byte tokens, then merges of pairs of byte
    /// tokens (printable ASCII first) into 65,536 two-byte tokens, then of two-byte and byte tokens into three-byte
    /// tokens, until 151,643 regular tokens; the 22 special tokens follow at Qwen2's ids. Qwen2's normalizer (NFC),
    /// split pattern, ByteLevel pre-tokenizer and decoder.
    /// </summary>
    public static void WriteTokenizer(string directory)
    {
        var map = ByteToChar();
        // Byte order: printable ASCII first, so common text merges early; then the rest.
        var order = Enumerable.Range(32, 95).Concat(Enumerable.Range(0, 32)).Concat(Enumerable.Range(127, 129)).ToArray();
        var vocab = new List<string>(RegularTokens);
        for (var b = 0; b < 256; b++) vocab.Add(map[b].ToString());
        var merges = new List<(string A, string B)>(RegularTokens - 256);
        var twoByte = new List<string>(65536);
        foreach (var a in order)
            foreach (var b in order)
            {
                var (x, y) = (map[a].ToString(), map[b].ToString());
                merges.Add((x, y)); vocab.Add(x + y); twoByte.Add(x + y);
            }
        foreach (var ab in twoByte)
            foreach (var c in order)
            {
                if (vocab.Count == RegularTokens) break;
                var z = map[c].ToString();
                merges.Add((ab, z)); vocab.Add(ab + z);
            }
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            w.WriteStartObject();
            w.WriteString("version", "1.0");
            w.WriteNull("truncation");
            w.WriteNull("padding");
            w.WriteStartArray("added_tokens");
            for (var i = 0; i < Specials.Length; i++)
            {
                w.WriteStartObject();
                w.WriteNumber("id", RegularTokens + i);
                w.WriteString("content", Specials[i]);
                w.WriteBoolean("single_word", false); w.WriteBoolean("lstrip", false); w.WriteBoolean("rstrip", false);
                w.WriteBoolean("normalized", false); w.WriteBoolean("special", true);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteStartObject("normalizer"); w.WriteString("type", "NFC"); w.WriteEndObject();
            w.WriteStartObject("pre_tokenizer");
            w.WriteString("type", "Sequence");
            w.WriteStartArray("pretokenizers");
            w.WriteStartObject();
            w.WriteString("type", "Split");
            w.WriteStartObject("pattern"); w.WriteString("Regex", Qwen2Pattern); w.WriteEndObject();
            w.WriteString("behavior", "Isolated");
            w.WriteBoolean("invert", false);
            w.WriteEndObject();
            w.WriteStartObject();
            w.WriteString("type", "ByteLevel"); w.WriteBoolean("add_prefix_space", false); w.WriteBoolean("trim_offsets", false); w.WriteBoolean("use_regex", false);
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteStartObject("post_processor");
            w.WriteString("type", "ByteLevel"); w.WriteBoolean("add_prefix_space", false); w.WriteBoolean("trim_offsets", false); w.WriteBoolean("use_regex", false);
            w.WriteEndObject();
            w.WriteStartObject("decoder");
            w.WriteString("type", "ByteLevel"); w.WriteBoolean("add_prefix_space", false); w.WriteBoolean("trim_offsets", false); w.WriteBoolean("use_regex", false);
            w.WriteEndObject();
            w.WriteStartObject("model");
            w.WriteString("type", "BPE");
            w.WriteNull("dropout");
            w.WriteNull("unk_token");
            w.WriteString("continuing_subword_prefix", "");
            w.WriteString("end_of_word_suffix", "");
            w.WriteBoolean("fuse_unk", false);
            w.WriteBoolean("byte_fallback", false);
            w.WriteBoolean("ignore_merges", false);
            w.WriteStartObject("vocab");
            for (var i = 0; i < vocab.Count; i++) w.WriteNumber(vocab[i], i);
            w.WriteEndObject();
            w.WriteStartArray("merges");
            foreach (var (a, b) in merges) w.WriteStringValue(a + " " + b);
            w.WriteEndArray();
            w.WriteEndObject();
            w.WriteEndObject();
        }
        File.WriteAllBytes(Path.Combine(directory, "tokenizer.json"), stream.ToArray());
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), new JsonObject
        {
            ["tokenizer_class"] = "Qwen2Tokenizer", ["eos_token"] = "<|endoftext|>", ["pad_token"] = "<|endoftext|>",
            ["model_max_length"] = 32768, ["clean_up_tokenization_spaces"] = false,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    // GPT-2's byte → printable character table.
    static char[] ByteToChar()
    {
        var map = new char[256];
        var n = 0;
        for (var b = 0; b < 256; b++)
            map[b] = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF ? (char)b : (char)(256 + n++);
        return map;
    }

    static double Mb(long bytes) => Math.Round(bytes / 1048576.0, 1);

    /// <summary>The README table of results/real-size.json.</summary>
    public static string Table(JsonNode? r)
    {
        if (r is null || r["load_seconds"] is null) return "";
        var sb = new StringBuilder();
        var gen = r["generate"]!.AsArray();
        var grpo = r["grpo"]!.AsArray();
        sb.AppendLine($"A checkpoint of real size ({r["date"]}, {r["machine"]}, {r["threads"]} torch threads; random weights in Qwen2.5-0.5B's shapes, " +
            $"{r["parameters"]} parameters, BF16 safetensors in {r["checkpoint"]?["files"]?.AsArray().Count(f => f!["file"]!.GetValue<string>().StartsWith("model-"))} shards, " +
            $"computed in {r["weights_dtype"]}{((bool?)r["quick"] == true ? "; QUICK sizes, not a result" : "")}):\n");
        sb.AppendLine("| phase | seconds | tokens/s | peak RSS so far (MB) | RSS after (MB) |");
        sb.AppendLine("| --- | ---: | ---: | ---: | ---: |");
        sb.AppendLine($"| load (config, {r["checkpoint"]?["files"]?.AsArray().Count} files, tokenizer of {r["tokenizer_vocab"]} tokens) | {r["load_seconds"]} | | {r["load_peak_rss_mb"]} | {r["load_end_rss_mb"]} |");
        foreach (var g in gen)
            sb.AppendLine($"| generate, batch {g!["batch"]}, {g["new_tokens"]} greedy tokens | {g["seconds"]} | {g["tokens_per_second"]} | | |");
        sb.AppendLine($"| (generate phase) | {r["generate_seconds"]} | | {r["generate_peak_rss_mb"]} | {r["generate_end_rss_mb"]} |");
        foreach (var it in grpo)
            sb.AppendLine($"| LoRA GRPO iteration {it!["iteration"]} ({r["grpo_rollouts_per_iteration"]} rollouts ≤ {r["grpo_max_new_tokens"]} tokens; generate {it["generate_seconds"]} s, reference {it["reference_seconds"]} s, update {it["update_actor_seconds"]} s) | {it["step_seconds"]} | | | |");
        sb.AppendLine($"| (GRPO phase, with the final checkpoint) | {r["grpo_seconds"]} | | {r["grpo_peak_rss_mb"]} | {r["grpo_end_rss_mb"]} |");
        if (r["bf16_compute"] is JsonObject bf)
            sb.AppendLine(bf["error"] is { } err
                ? $"| bf16 compute (parameters cast to bfloat16) | failed: {err} | | | |"
                : $"| bf16 compute: load + cast, generate batch 1 | {bf["load_seconds"]} | {bf["tokens_per_second"]} | {bf["peak_rss_mb"]} (since its start) | {bf["end_rss_mb"]} |");
        sb.AppendLine();
        return sb.ToString();
    }
}
