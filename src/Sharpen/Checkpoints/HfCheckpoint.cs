using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Models;
using Sharpen.Tokenizers;
using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Checkpoints;

/// <summary>A model, and what was stored beside it, read from a checkpoint folder.</summary>
public sealed record LoadedModel(CausalLM Model, ITokenizer? Tokenizer, ScalarHead? Head, GenerationConfig Generation, string Directory);

/// <summary>
/// The Hugging Face folder layout: <c>config.json</c>, <c>generation_config.json</c>,
/// <c>model.safetensors</c> (or shards with <c>model.safetensors.index.json</c>), the tokenizer's
/// files, and Sharpen's optional <c>scalar_head.safetensors</c>.
/// </summary>
public static class HfCheckpoint
{
    /// <summary>Weights file of an unsharded checkpoint.</summary>
    public const string WeightsFile = "model.safetensors";
    /// <summary>Index of a sharded checkpoint.</summary>
    public const string IndexFile = "model.safetensors.index.json";

    /// <summary>
    /// Writes a checkpoint folder (created if needed). <paramref name="storeAs"/> is Float32 or
    /// BFloat16; <c>torch_dtype</c> in config.json says which. With <paramref name="maxShardBytes"/> &gt; 0 the weights
    /// are split into shards of at most that many stored bytes (a larger single tensor gets its own) plus
    /// <c>model.safetensors.index.json</c>, as <c>save_pretrained(max_shard_size=…)</c> writes them; weight files of an
    /// earlier save in the folder (single or sharded) are removed, so the folder holds one set.
    /// </summary>
    public static void Save(string directory, CausalLM model, ITokenizer? tokenizer = null, ScalarHead? head = null,
        ScalarType storeAs = ScalarType.Float32, GenerationConfig? generation = null, long maxShardBytes = 0)
    {
        TorchRuntime.EnsureLoaded();
        if (storeAs is not (ScalarType.Float32 or ScalarType.BFloat16))
            throw new ArgumentException($"checkpoints are written as Float32 or BFloat16, not {storeAs}");
        Directory.CreateDirectory(directory);
        var config = model.Config with { TorchDtype = storeAs == ScalarType.BFloat16 ? "bfloat16" : "float32" };
        config.Save(Path.Combine(directory, "config.json"));
        (generation ?? GenerationConfig.From(config)).Save(Path.Combine(directory, "generation_config.json"));
        foreach (var stale in System.IO.Directory.EnumerateFiles(directory, "model*.safetensors*")
                     .Where(f => Path.GetFileName(f) == WeightsFile || Path.GetFileName(f) == IndexFile || ShardName.IsMatch(Path.GetFileName(f))).ToList())
            File.Delete(stale);
        using (NewDisposeScope())   // the detached handles, and a LoRA model's merged weights, are freed once written
        {
            var metadata = new Dictionary<string, string> { ["format"] = "pt" };
            if (maxShardBytes > 0)
                Safetensors.SaveSharded(directory, model.Weights().Select(w => (w.Name, w.Tensor.detach())).ToList(), maxShardBytes, storeAs, metadata, WeightsFile, IndexFile);
            else
                Safetensors.Save(Path.Combine(directory, WeightsFile), model.Weights().ToDictionary(w => w.Name, w => w.Tensor.detach()), storeAs, metadata);
        }
        if (head is not null)
            Safetensors.Save(Path.Combine(directory, ScalarHead.FileName),
                head.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach()), ScalarType.Float32);
        tokenizer?.Save(directory);
        if (model.Lora is not null) SaveAdapter(Path.Combine(directory, AdapterFolder), model);
    }

    static readonly System.Text.RegularExpressions.Regex ShardName = new(@"^model-\d{5}-of-\d{5}\.safetensors$");

    /// <summary>Subfolder of a checkpoint of a LoRA-trained model that holds the adapters alone (the folder itself holds
    /// the merged weights, so it loads as a plain model).</summary>
    public const string AdapterFolder = "adapter";
    /// <summary>PEFT's adapter config file.</summary>
    public const string AdapterConfigFile = "adapter_config.json";
    /// <summary>PEFT's adapter weights file.</summary>
    public const string AdapterWeightsFile = "adapter_model.safetensors";

    /// <summary>Writes <paramref name="model"/>'s LoRA adapters in Hugging Face PEFT's layout: <c>adapter_config.json</c>
    /// and <c>adapter_model.safetensors</c> (A and B in float32 under PEFT's names). <paramref name="baseModel"/> (default: the
    /// folder the model was loaded from, if any) becomes <c>base_model_name_or_path</c>.</summary>
    public static void SaveAdapter(string directory, CausalLM model, string? baseModel = null)
    {
        var lora = model.Lora ?? throw new ArgumentException("the model has no LoRA adapters", nameof(model));
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, AdapterConfigFile),
            lora.ToPeftConfig(baseModel ?? model.SourceDirectory).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        Safetensors.Save(Path.Combine(directory, AdapterWeightsFile), model.AdapterWeights().ToDictionary(w => w.Name, w => w.Tensor.detach()),
            ScalarType.Float32, new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>
    /// Reads a PEFT LoRA adapter folder into <paramref name="model"/>: attaches adapters with the folder's options when the
    /// model has none (the base weights stay as they are), or checks that its options match, then loads A and B.
    /// </summary>
    public static void LoadAdapter(string directory, CausalLM model)
    {
        var configPath = Path.Combine(directory, AdapterConfigFile);
        var weightsPath = Path.Combine(directory, AdapterWeightsFile);
        if (!File.Exists(configPath) || !File.Exists(weightsPath))
            throw new CheckpointException($"{directory}: expected {AdapterConfigFile} and {AdapterWeightsFile} (a LoRA adapter folder)");
        LoraOptions options;
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(configPath)) as JsonObject ?? throw new CheckpointException($"{configPath}: expected a JSON object");
            options = LoraOptions.FromPeftConfig(o, configPath);
        }
        catch (JsonException e) { throw new CheckpointException($"{configPath}: invalid JSON: {e.Message}"); }
        catch (InvalidDataException e) { throw new CheckpointException(e.Message); }
        if (model.Lora is null) model.AddLora(options, seed: 0);
        else if (model.Lora.R != options.R || model.Lora.Scale != options.Scale || !model.Lora.TargetModules.Order().SequenceEqual(options.TargetModules.Order()))
            throw new CheckpointException($"{configPath}: r {options.R}, alpha {options.Alpha}, target_modules [{string.Join(", ", options.TargetModules)}] " +
                $"differ from the model's (r {model.Lora.R}, alpha {model.Lora.Alpha}, [{string.Join(", ", model.Lora.TargetModules)}])");
        using var scope = NewDisposeScope();
        var weights = Safetensors.Load(weightsPath);
        model.LoadAdapterWeights(weights, weightsPath);
    }

    /// <summary>Saves into a temporary sibling folder and renames it over <paramref name="directory"/>, so a crash never leaves half a model.</summary>
    public static void SaveAtomically(string directory, CausalLM model, ITokenizer? tokenizer = null, ScalarHead? head = null)
    {
        var full = Path.GetFullPath(directory);
        var tmp = Path.Combine(Path.GetDirectoryName(full)!, $".tmp-{Path.GetFileName(full)}-{Guid.NewGuid():N}");
        try { Save(tmp, model, tokenizer, head); }
        catch
        {
            try { System.IO.Directory.Delete(tmp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
        if (System.IO.Directory.Exists(full)) System.IO.Directory.Delete(full, recursive: true);
        System.IO.Directory.Move(tmp, full);
    }

    /// <summary>
    /// Loads the weights of the checkpoint folder <paramref name="directory"/> into an existing <paramref name="model"/> of
    /// the same architecture (and its scalar head into <paramref name="head"/>, which then must be there).
    /// </summary>
    public static void LoadWeightsInto(CausalLM model, string directory, ScalarHead? head = null)
    {
        var loaded = Load(directory);
        using (loaded.Model)
        using (loaded.Head)
        {
            model.LoadWeights(loaded.Model.Weights().ToDictionary(w => w.Name, w => w.Tensor), directory);
            if (head is null) return;
            if (loaded.Head is null) throw new CheckpointException($"{directory}: no {ScalarHead.FileName}");
            using var _ = no_grad();
            var src = loaded.Head.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            foreach (var (name, p) in head.named_parameters()) p.copy_(src[name]);
        }
    }

    /// <summary>
    /// Reads a checkpoint folder: validates config.json, loads the weights (F32/F16/BF16 → float32; each tensor is read in
    /// its stored type and converted as it is copied into the model, so a BF16 checkpoint adds half its float32 size at peak),
    /// the tokenizer if its files are there (<paramref name="requireTokenizer"/> makes it mandatory),
    /// and the scalar head if present.
    /// </summary>
    public static LoadedModel Load(string directory, bool requireTokenizer = false)
    {
        TorchRuntime.EnsureLoaded();
        if (!System.IO.Directory.Exists(directory)) throw new CheckpointException($"{directory}: checkpoint folder not found");
        var configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath)) throw new CheckpointException($"{directory}: no config.json (expected a Hugging Face model folder)");
        var config = ModelConfig.Load(configPath) with { TorchDtype = "float32" };
        var model = new CausalLM(config, seed: null, initialize: false);   // LoadWeights below sets every weight
        using (var scope = NewDisposeScope())
        {
            Dictionary<string, Tensor> weights;
            string source;
            var single = Path.Combine(directory, WeightsFile);
            var index = Path.Combine(directory, IndexFile);
            // Read in the stored type (BF16 stays BF16, half the memory of float32); copying into the model converts.
            if (File.Exists(single)) { weights = Safetensors.Load(single, null, null, Safetensors.DefaultChunkBytes); source = single; }
            else if (File.Exists(index)) { weights = Safetensors.LoadSharded(index, (ScalarType?)null); source = index; }
            else if (File.Exists(Path.Combine(directory, "pytorch_model.bin")))
                throw new CheckpointException($"{directory}: only pytorch_model.bin found; Sharpen reads safetensors (convert with save_pretrained(safe_serialization=True))");
            else throw new CheckpointException($"{directory}: no {WeightsFile} or {IndexFile}");
            foreach (var (name, w) in weights)
                if (w.is_floating_point() && Safetensors.NonFinite(w, ScalarType.Float32) is { } bad)
                    throw new CheckpointException($"{source}: tensor '{name}' holds {bad}; the checkpoint cannot be sampled from or trained " +
                        "(it was saved from a diverged run)");
            model.LoadWeights(weights, source);
            foreach (var w in weights.Values) w.Dispose();
        }
        ScalarHead? head = null;
        var headPath = Path.Combine(directory, ScalarHead.FileName);
        if (File.Exists(headPath))
        {
            head = new ScalarHead(config.HiddenSize);
            var hw = Safetensors.Load(headPath);
            var own = head.named_parameters().ToDictionary(p => p.name, p => p.parameter);
            var missing = own.Keys.Where(k => !hw.ContainsKey(k)).ToList();
            if (missing.Count > 0) throw new CheckpointException($"{headPath}: missing {string.Join(", ", missing)}");
            using (no_grad())
                foreach (var (k, p) in own)
                {
                    if (!hw[k].shape.SequenceEqual(p.shape))
                        throw new CheckpointException($"{headPath}: tensor '{k}' has shape [{string.Join(",", hw[k].shape)}], expected [{string.Join(",", p.shape)}]");
                    p.copy_(hw[k]);
                }
            foreach (var t in hw.Values) t.Dispose();
        }
        ITokenizer? tokenizer = null;
        if (requireTokenizer || File.Exists(Path.Combine(directory, CharTokenizer.FileName)) || File.Exists(Path.Combine(directory, HfTokenizer.TokenizerFileName))
            || File.Exists(Path.Combine(directory, HfTokenizer.SentencePieceModelFileName))) tokenizer = TokenizerFiles.Load(directory);
        if (tokenizer is not null && tokenizer.VocabSize > config.VocabSize)
        {
            var tokFile = File.Exists(Path.Combine(directory, CharTokenizer.FileName)) ? CharTokenizer.FileName
                : File.Exists(Path.Combine(directory, HfTokenizer.TokenizerFileName)) ? HfTokenizer.TokenizerFileName : HfTokenizer.SentencePieceModelFileName;
            throw new CheckpointException($"{Path.Combine(directory, tokFile)} has {tokenizer.VocabSize} token ids but {configPath} says vocab_size " +
                $"{config.VocabSize}; ids from {config.VocabSize} on have no embedding row (tokenizer and model do not belong together)");
        }
        var genPath = Path.Combine(directory, "generation_config.json");
        var gen = File.Exists(genPath) ? GenerationConfig.Load(genPath) : GenerationConfig.From(config);
        model.SourceDirectory = Path.GetFullPath(directory);
        return new LoadedModel(model, tokenizer, head, gen, directory);
    }
}

/// <summary>The part of <c>generation_config.json</c> Sharpen reads and writes.</summary>
public sealed record GenerationConfig(int? BosTokenId, IReadOnlyList<int> EosTokenIds, int? PadTokenId,
    bool DoSample = true, double Temperature = 1.0, double TopP = 1.0, int TopK = 0)
{
    /// <summary>Defaults taken from a model config.</summary>
    public static GenerationConfig From(ModelConfig c) => new(c.BosTokenId, c.EosTokenIds, c.PadTokenId);

    /// <summary>Writes the file.</summary>
    public void Save(string path)
    {
        var o = new JsonObject { ["do_sample"] = DoSample, ["temperature"] = Temperature, ["top_p"] = TopP, ["top_k"] = TopK };
        if (BosTokenId is { } b) o["bos_token_id"] = b;
        if (EosTokenIds.Count == 1) o["eos_token_id"] = EosTokenIds[0];
        else if (EosTokenIds.Count > 1) o["eos_token_id"] = new JsonArray(EosTokenIds.Select(i => (JsonNode)i).ToArray());
        if (PadTokenId is { } p) o["pad_token_id"] = p;
        File.WriteAllText(path, o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    /// <summary>Reads the file; unknown keys are ignored, wrong types are errors naming the key.</summary>
    public static GenerationConfig Load(string path)
    {
        JsonObject o;
        try { o = JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new CheckpointException($"{path}: expected a JSON object"); }
        catch (JsonException e) { throw new CheckpointException($"{path}: invalid JSON: {e.Message}"); }
        int? I(string k) => o[k] is null ? null : o[k] is JsonValue v && v.TryGetValue(out int i) ? i : throw new CheckpointException($"{path}: '{k}' must be an integer");
        double D(string k, double f) => o[k] is null ? f : o[k] is JsonValue v && v.TryGetValue(out double d) ? d : throw new CheckpointException($"{path}: '{k}' must be a number");
        var eos = o["eos_token_id"] switch
        {
            null => new List<int>(),
            JsonArray a => a.Select((x, i) => x is JsonValue v && v.TryGetValue(out int n) ? n : throw new CheckpointException($"{path}: 'eos_token_id[{i}]' must be an integer")).ToList(),
            _ => [I("eos_token_id")!.Value],
        };
        bool sample = o["do_sample"] is JsonValue dv && dv.TryGetValue(out bool bb) ? bb : true;
        return new GenerationConfig(I("bos_token_id"), eos, I("pad_token_id"), sample, D("temperature", 1.0), D("top_p", 1.0), I("top_k") ?? 0);
    }
}

/// <summary>A checkpoint folder that cannot be read; the message names the folder or file.</summary>
public sealed class CheckpointException(string message) : Exception(message);
