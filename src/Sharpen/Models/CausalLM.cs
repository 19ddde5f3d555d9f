using Sharpen.Torch;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sharpen.Models;

/// <summary>What a forward pass returns. Both tensors belong to the caller's dispose scope.</summary>
/// <param name="Logits">(B, T, V), or (B, 1, V) when only the last position was asked for.</param>
/// <param name="Hidden">(B, T, C) final normalised hidden states, when asked for.</param>
public sealed record ModelOutput(Tensor Logits, Tensor? Hidden);

/// <summary>
/// Decoder-only Llama-family transformer: token embedding, N blocks of (RMSNorm → grouped-query
/// attention with rotary embeddings → residual, RMSNorm → SwiGLU MLP → residual), final RMSNorm,
/// LM head (optionally tied to the embedding). Parameter names are exactly Hugging Face's
/// (<c>model.embed_tokens.weight</c>, <c>model.layers.{i}.self_attn.q_proj.weight</c>,
/// <c>lm_head.weight</c>, ...), so checkpoints load without a mapping table.
/// </summary>
public sealed class CausalLM : nn.Module
{
    /// <summary>The architecture this model was built from.</summary>
    public ModelConfig Config { get; }

    readonly DecoderStack _model;
    readonly Linear? _lmHead;
    readonly RotaryTable _rope;
    readonly RotaryTable? _ropeLocal;                                 // Gemma 3: the sliding layers' own base, no scaling

    /// <summary>Builds a randomly initialised model (normal(0, initializer_range) weights, unit norms).</summary>
    public CausalLM(ModelConfig config, long? seed = null) : this(config, seed, initialize: true) { }

    /// <summary>
    /// With <paramref name="initialize"/> false the weights keep whatever the layer constructors put there: for a model
    /// whose every weight is loaded next (<see cref="LoadWeights"/> requires all of them), so the normal draw, most of the
    /// construction time of a large model, is skipped.
    /// </summary>
    internal CausalLM(ModelConfig config, long? seed, bool initialize) : base("CausalLM")
    {
        TorchRuntime.EnsureLoaded();
        Config = config.Validate().EnsureFitsInMemory();
        _model = new DecoderStack(config);
        register_module("model", _model);
        if (!config.TieWordEmbeddings)
        {
            _lmHead = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
            register_module("lm_head", _lmHead);
        }
        _rope = new RotaryTable(config);
        if (config.LocalRope) _ropeLocal = new RotaryTable(config.LocalRopeConfig);
        if (initialize) InitWeights(seed);
    }

    // A private generator, so initialisation is reproducible even while other threads use torch's global RNG.
    void InitWeights(long? seed)
    {
        using var _ = no_grad();
        using var gen = new Generator((ulong)(seed ?? Random.Shared.NextInt64()));
        foreach (var (name, p) in named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.fill_(Config.NormOffset ? 0.0 : 1.0);   // Gemma: (1 + w)
            else if (name.EndsWith(".bias", StringComparison.Ordinal)) p.zero_();
            else p.normal_(0.0, Config.InitializerRange, gen);   // nn.init.normal_ ignores its generator in TorchSharp 0.107
        }
    }

    /// <summary>Number of parameters (tied weights counted once).</summary>
    public long ParameterCount() => parameters().Sum(p => p.numel());

    /// <summary>
    /// Runs the model.
    /// </summary>
    /// <param name="inputIds">(B, T) token ids (int64).</param>
    /// <param name="attentionMask">(B, P+T) 1 for real tokens, 0 for padding, covering the cached
    /// positions P and the new ones; left or right padding. Null means no padding.</param>
    /// <param name="cache">KV cache; the new keys and values are appended and its length advanced by T.</param>
    /// <param name="returnHidden">Also return the final hidden states (for value and reward heads).</param>
    /// <param name="lastLogitsOnly">Compute logits for the last position only (prefill in generation).</param>
    public ModelOutput Forward(Tensor inputIds, Tensor? attentionMask = null, KvCache? cache = null,
        bool returnHidden = false, bool lastLogitsOnly = false)
    {
        long b = inputIds.shape[0], t = inputIds.shape[1];
        long past = cache?.Length ?? 0;
        if (attentionMask is not null && (attentionMask.shape[0] != b || attentionMask.shape[1] != past + t))
            throw new ArgumentException($"attention mask has shape [{string.Join(",", attentionMask.shape)}], expected [{b},{past + t}] (cached + new positions)");
        if (cache is not null && past + t > cache.Capacity)
            throw new ArgumentException($"KV cache holds {cache.Capacity} positions; {past} used + {t} new do not fit");

        // Positions count real tokens only, so left padding does not shift a prompt's rotary phases.
        Tensor pos;                                                   // (B, T)
        Tensor? mask = null;                                          // (B, 1, T, P+T) bool, true = may attend
        if (attentionMask is not null)
        {
            var am = attentionMask.to(ScalarType.Int64);
            pos = (am.cumsum(1) - 1).clamp_min(0).narrow(1, past, t);
            var keyOk = am.to(ScalarType.Bool).view(b, 1, 1, past + t);
            var qIdx = arange(past, past + t, dtype: ScalarType.Int64).view(t, 1);
            var kIdx = arange(0, past + t, dtype: ScalarType.Int64).view(1, past + t);
            var causal = kIdx <= qIdx;                                // (T, P+T)
            var self = kIdx == qIdx;                                  // keeps padded query rows from being all-masked
            mask = (keyOk & causal.view(1, 1, t, past + t)) | self.view(1, 1, t, past + t);
        }
        else
        {
            pos = arange(past, past + t, dtype: ScalarType.Int64).view(1, t).expand(b, t);
            if (t > 1 && past > 0)
            {
                var qIdx = arange(past, past + t, dtype: ScalarType.Int64).view(t, 1);
                var kIdx = arange(0, past + t, dtype: ScalarType.Int64).view(1, past + t);
                mask = (kIdx <= qIdx).view(1, 1, t, past + t);
            }
        }
        bool isCausal = attentionMask is null && past == 0 && t > 1;

        // Sliding-window layers: a query at column q sees keys at columns q − W + 1 … q (Transformers' rule, columns count padding).
        // While every key is within the window (P + T ≤ W) that is full attention, so those layers keep the full masks.
        Tensor? windowMask = null;                                    // (B or 1, 1, T, P+T) bool
        if (Config.HasSlidingLayers && past + t > Config.SlidingWindow!.Value)
        {
            var qIdx = arange(past, past + t, dtype: ScalarType.Int64).view(t, 1);
            var kIdx = arange(0, past + t, dtype: ScalarType.Int64).view(1, past + t);
            var inWindow = ((kIdx <= qIdx) & (kIdx > qIdx - Config.SlidingWindow!.Value)).view(1, 1, t, past + t);
            windowMask = mask is null ? inWindow : (mask & inWindow) | (kIdx == qIdx).view(1, 1, t, past + t);
        }

        var (cos, sin) = _rope.Lookup(pos);                           // (B, 1, T, D) each
        var local = _ropeLocal?.Lookup(pos);
        var h = _model.Forward(inputIds, new Rotary(cos, sin, local?.Cos ?? cos, local?.Sin ?? sin), new LayerMasks(mask, isCausal, windowMask), cache);   // (B, T, C)
        cache?.Advance(t);

        var last = lastLogitsOnly ? h.narrow(1, t - 1, 1) : h;
        var logits = _lmHead is not null ? _lmHead.forward(last) : nn.functional.linear(last, _model.EmbedWeight);  // (B, T, V)
        if (Config.FinalLogitSoftcapping is { } cap) logits = (logits / cap).tanh() * cap;   // Gemma 2
        return new ModelOutput(logits, returnHidden ? h : null);
    }

    /// <summary>
    /// Starts a gradient-free decode of <paramref name="batch"/> sequences of at most <paramref name="capacity"/> positions:
    /// the generation fast path (fused projections, grouped-query attention without copying keys, one mask per call), or
    /// with <paramref name="budget"/> H₂O heavy-hitter eviction. Reads the weights as they are now (LoRA merged when on).
    /// </summary>
    public DecodeSession StartDecoding(long batch, long capacity, KvBudget? budget = null) => new(this, batch, capacity, budget);

    internal DecoderStack Stack => _model;
    internal Tensor? LmHeadWeight => _lmHead?.weight;
    internal RotaryTable Rope => _rope;
    /// <summary>The sliding layers' rotary table (Gemma 3), or null when they share <see cref="Rope"/>.</summary>
    internal RotaryTable? RopeLocal => _ropeLocal;

    /// <summary>A KV cache sized for this model.</summary>
    public KvCache CreateCache(long batch, long capacity) =>
        new(Config.NumHiddenLayers, batch, Config.NumKeyValueHeads, capacity, Config.HeadDim);

    /// <summary>
    /// Copies weights from a state dict with Hugging Face names. Every parameter must be present
    /// with the right shape; extra entries are an error unless listed in <paramref name="ignore"/>
    /// (e.g. <c>lm_head.weight</c> stored alongside tied embeddings). <paramref name="source"/> names the file in errors.
    /// </summary>
    public void LoadWeights(IReadOnlyDictionary<string, Tensor> weights, string source, Func<string, bool>? ignore = null)
    {
        var own = BaseParameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        if (Config.FusedProjections) weights = SplitFused(weights, source);
        CopyInto(own, weights, source, $"weights do not match the {Config.ModelType} architecture in config.json", k => IsBenign(k) || (ignore?.Invoke(k) ?? false));
    }

    /// <summary>Copies <paramref name="weights"/> into <paramref name="own"/> by name; every one must be there with its shape,
    /// and no other unless <paramref name="allowExtra"/> says so.</summary>
    static void CopyInto(Dictionary<string, Tensor> own, IReadOnlyDictionary<string, Tensor> weights, string source, string mismatch, Func<string, bool> allowExtra)
    {
        var missing = own.Keys.Where(k => !weights.ContainsKey(k)).ToList();
        var unexpected = weights.Keys.Where(k => !own.ContainsKey(k) && !allowExtra(k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new ModelConfigException($"{source}: {mismatch}" +
                (missing.Count > 0 ? $"; missing: {Preview(missing)}" : "") +
                (unexpected.Count > 0 ? $"; unexpected: {Preview(unexpected)}" : ""));
        using var _ = no_grad();
        foreach (var (name, p) in own)
        {
            var w = weights[name];
            if (!w.shape.SequenceEqual(p.shape))
                throw new ModelConfigException($"{source}: tensor '{name}' has shape [{string.Join(",", w.shape)}], expected [{string.Join(",", p.shape)}]");
            p.copy_(w);
        }
    }

    /// <summary>Phi-3: <c>self_attn.qkv_proj</c> → q/k/v_proj rows, <c>mlp.gate_up_proj</c> → gate_proj (first half) and up_proj.</summary>
    Dictionary<string, Tensor> SplitFused(IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        var c = Config;
        long q = (long)c.NumAttentionHeads * c.HeadDim, kv = (long)c.NumKeyValueHeads * c.HeadDim, f = c.IntermediateSize;
        var result = new Dictionary<string, Tensor>();
        foreach (var (name, t) in weights)
        {
            if (name.EndsWith(".self_attn.qkv_proj.weight", StringComparison.Ordinal))
            {
                if (t.shape.Length != 2 || t.shape[0] != q + 2 * kv)
                    throw new ModelConfigException($"{source}: tensor '{name}' has shape [{string.Join(",", t.shape)}], expected [{q + 2 * kv},{c.HiddenSize}] (q, k, v rows)");
                var p = name[..^"qkv_proj.weight".Length];
                result[p + "q_proj.weight"] = t.narrow(0, 0, q);
                result[p + "k_proj.weight"] = t.narrow(0, q, kv);
                result[p + "v_proj.weight"] = t.narrow(0, q + kv, kv);
            }
            else if (name.EndsWith(".mlp.gate_up_proj.weight", StringComparison.Ordinal))
            {
                if (t.shape.Length != 2 || t.shape[0] != 2 * f)
                    throw new ModelConfigException($"{source}: tensor '{name}' has shape [{string.Join(",", t.shape)}], expected [{2 * f},{c.HiddenSize}] (gate and up rows)");
                var p = name[..^"gate_up_proj.weight".Length];
                result[p + "gate_proj.weight"] = t.narrow(0, 0, f);
                result[p + "up_proj.weight"] = t.narrow(0, f, f);
            }
            else result[name] = t;
        }
        return result;
    }

    bool IsBenign(string key) =>
        key.EndsWith("rotary_emb.inv_freq", StringComparison.Ordinal) ||
        (Config.TieWordEmbeddings && key == "lm_head.weight");

    static string Preview(List<string> names) =>
        string.Join(", ", names.Take(8)) + (names.Count > 8 ? $" (+{names.Count - 8} more)" : "");

    /// <summary>
    /// A copy with the same config and weights. A frozen copy (<paramref name="trainable"/> false) has no
    /// gradients and is in eval mode: a reference policy. A trainable one starts a critic.
    /// </summary>
    public CausalLM Copy(bool trainable)
    {
        var copy = new CausalLM(Config, seed: 0, initialize: false);   // every weight is copied below
        using (NewDisposeScope()) copy.LoadWeights(Weights().ToDictionary(w => w.Name, w => w.Tensor), "policy");   // frees merged LoRA weights
        if (!trainable)
        {
            foreach (var p in copy.parameters()) p.requires_grad = false;
            copy.eval();
        }
        return copy;
    }

    /// <summary>
    /// Parameters by Hugging Face name: what a checkpoint stores. With LoRA attached, each adapted projection's weight
    /// is given merged (W + (alpha / r)·B·A, a new tensor: call inside a dispose scope) and the adapters themselves are
    /// left out, so the result is a plain model of the same architecture.
    /// </summary>
    /// <remarks>Phi-3 (<see cref="ModelConfig.FusedProjections"/>): q/k/v come as one <c>self_attn.qkv_proj.weight</c> and
    /// gate/up as one <c>mlp.gate_up_proj.weight</c> (new tensors), as its checkpoints store them.</remarks>
    public IEnumerable<(string Name, Tensor Tensor)> Weights()
    {
        var merged = Lora is null ? null : AdaptedProjections().ToDictionary(a => a.Name + ".weight", a => a.Adapter);
        var plain = BaseParameters().Select(x => merged is not null && merged.TryGetValue(x.name, out var a)
            ? (x.name, a.Merged().detach()) : (x.name, (Tensor)x.parameter));
        return Config.FusedProjections ? Fuse(plain.ToList()) : plain;
    }

    static IEnumerable<(string Name, Tensor Tensor)> Fuse(List<(string Name, Tensor Tensor)> plain)
    {
        var byName = plain.ToDictionary(x => x.Name, x => x.Tensor);
        foreach (var (name, t) in plain)
        {
            if (name.EndsWith(".self_attn.q_proj.weight", StringComparison.Ordinal))
            {
                var p = name[..^"q_proj.weight".Length];
                yield return (p + "qkv_proj.weight", cat([t.detach(), byName[p + "k_proj.weight"].detach(), byName[p + "v_proj.weight"].detach()], 0));
            }
            else if (name.EndsWith(".mlp.gate_proj.weight", StringComparison.Ordinal))
            {
                var p = name[..^"gate_proj.weight".Length];
                yield return (p + "gate_up_proj.weight", cat([t.detach(), byName[p + "up_proj.weight"].detach()], 0));
            }
            else if (!name.EndsWith(".self_attn.k_proj.weight", StringComparison.Ordinal) && !name.EndsWith(".self_attn.v_proj.weight", StringComparison.Ordinal)
                     && !name.EndsWith(".mlp.up_proj.weight", StringComparison.Ordinal))
                yield return (name, t);
        }
    }

    /// <summary>The base model's parameters (adapters excluded) by Hugging Face name.</summary>
    IEnumerable<(string name, Parameter parameter)> BaseParameters() =>
        named_parameters().Where(p => !p.name.Contains(".lora_", StringComparison.Ordinal));

    /// <summary>The parameters an optimizer should update: all of them, or only the LoRA adapters when LoRA is attached.</summary>
    public IEnumerable<Parameter> TrainableParameters() => parameters().Where(p => p.requires_grad);

    /// <summary>The checkpoint folder this model was loaded from (set by <c>HfCheckpoint.Load</c>), or null; an adapter saved
    /// from it names this folder as its <c>base_model_name_or_path</c>.</summary>
    public string? SourceDirectory { get; set; }

    /// <summary>The LoRA options in use, or null for a plain model.</summary>
    public LoraOptions? Lora { get; private set; }

    readonly LoraSwitch _loraSwitch = new();

    /// <summary>
    /// Until disposed, the model computes without its LoRA adapters: the frozen base model. RL uses this as the reference
    /// policy instead of a copy (as PEFT users of TRL do); at the start of a run with fresh adapters (B = 0) it is the
    /// initial policy. Throws without LoRA.
    /// </summary>
    public IDisposable AdaptersDisabled()
    {
        if (Lora is null) throw new InvalidOperationException("this model has no LoRA adapters to disable");
        if (!_loraSwitch.Enabled) throw new InvalidOperationException("the adapters are already disabled");
        _loraSwitch.Enabled = false;
        return new Restore(_loraSwitch);
    }

    /// <summary>
    /// The reference policy for a one-off pass, and what ends it: with LoRA, this model with its adapters off (the frozen
    /// base, no copy) until <c>Release</c> is disposed; otherwise a frozen copy of the model as it is now, which
    /// <c>Release</c> disposes.
    /// </summary>
    public (CausalLM Model, IDisposable Release) FrozenReference()
    {
        if (Lora is not null) return (this, AdaptersDisabled());
        var copy = Copy(trainable: false);
        return (copy, copy);
    }

    sealed class Restore(LoraSwitch s) : IDisposable
    {
        public void Dispose() => s.Enabled = true;
    }

    /// <summary>
    /// Attaches LoRA adapters to <paramref name="options"/>' target projections of every layer and freezes every other
    /// parameter (<see cref="TrainableParameters"/> are then the adapters alone). A is drawn from a private generator
    /// seeded with <paramref name="seed"/>; B starts at zero, so the model computes what it computed before.
    /// </summary>
    public void AddLora(LoraOptions options, long seed)
    {
        options.Validate();
        if (Lora is not null) throw new InvalidOperationException("this model already has LoRA adapters");
        foreach (var p in parameters()) p.requires_grad = false;
        using var gen = new Generator((ulong)seed);
        foreach (var layer in _model.Layers)
            foreach (var (adapters, projections) in new[] { (layer.Attn.Adapters, layer.Attn.Projections()), (layer.Mlp.Adapters, layer.Mlp.Projections()) })
                foreach (var (name, linear) in projections)
                    if (options.TargetModules.Contains(name))
                    {
                        var w = linear.weight!;
                        adapters[name] = new LoraAdapter(linear, w.shape[1], w.shape[0], options, gen, _loraSwitch);
                    }
        Lora = options;
    }

    /// <summary>Every adapter with the Hugging Face name of its projection (<c>model.layers.0.self_attn.q_proj</c>).</summary>
    IEnumerable<(string Name, LoraAdapter Adapter)> AdaptedProjections()
    {
        var layers = _model.Layers;
        for (int i = 0; i < layers.Count; i++)
        {
            foreach (var (name, a) in layers[i].Attn.Adapters) yield return ($"model.layers.{i}.self_attn.{name}", a);
            foreach (var (name, a) in layers[i].Mlp.Adapters) yield return ($"model.layers.{i}.mlp.{name}", a);
        }
    }

    /// <summary>The adapters' A and B by the names Hugging Face PEFT writes in <c>adapter_model.safetensors</c>
    /// (<c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>); empty without LoRA.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> AdapterWeights()
    {
        foreach (var (name, a) in AdaptedProjections().OrderBy(x => x.Name, StringComparer.Ordinal))
        {
            yield return ($"{PeftPrefix}{name}.lora_A.weight", a.A.weight!);
            yield return ($"{PeftPrefix}{name}.lora_B.weight", a.B.weight!);
        }
    }

    const string PeftPrefix = "base_model.model.";

    /// <summary>Copies adapter weights written by <see cref="AdapterWeights"/> (or PEFT) into the attached adapters; every
    /// adapter must be present with its shape and nothing else may be. <paramref name="source"/> names the file in errors.</summary>
    public void LoadAdapterWeights(IReadOnlyDictionary<string, Tensor> weights, string source)
    {
        if (Lora is null) throw new InvalidOperationException("this model has no LoRA adapters to load into");
        CopyInto(AdapterWeights().ToDictionary(w => w.Name, w => w.Tensor), weights, source, "adapter weights do not match the LoRA options", _ => false);
    }
}

/// <summary><c>model.*</c>: embeddings, decoder layers, final norm.</summary>
sealed class DecoderStack : nn.Module
{
    readonly Embedding _embed;
    readonly ModuleList<DecoderLayer> _layers;
    readonly RmsNorm _norm;
    readonly double _embedScale;                                      // Gemma: √hidden_size

    public DecoderStack(ModelConfig c) : base("model")
    {
        _embed = nn.Embedding(c.VocabSize, c.HiddenSize);
        _layers = new ModuleList<DecoderLayer>();
        for (int i = 0; i < c.NumHiddenLayers; i++) _layers.Add(new DecoderLayer(c, i));
        _norm = new RmsNorm(c.HiddenSize, c.RmsNormEps, c.NormOffset);
        _embedScale = c.EmbeddingScale;
        register_module("embed_tokens", _embed);
        register_module("layers", _layers);
        register_module("norm", _norm);
    }

    public Tensor EmbedWeight => _embed.weight!;
    public RmsNorm Norm => _norm;

    public IReadOnlyList<DecoderLayer> Layers => [.. _layers];

    public Tensor Forward(Tensor ids, Rotary rope, LayerMasks masks, KvCache? cache)
    {
        var h = _embed.forward(ids);                                  // (B, T, C)
        if (_embedScale != 1.0) h = h * _embedScale;
        foreach (var layer in _layers)
        {
            var (cos, sin) = layer.Sliding ? (rope.LocalCos, rope.LocalSin) : (rope.Cos, rope.Sin);
            h = layer.Sliding && masks.Window is not null
                ? layer.Forward(h, cos, sin, masks.Window, false, cache)
                : layer.Forward(h, cos, sin, masks.Full, masks.IsCausal, cache);
        }
        return _norm.forward(h);
    }
}

/// <summary>The rotary cos/sin of one forward pass, (B, 1, T, D) each: of global layers, and of sliding layers (the same
/// tensors unless the model gives sliding layers their own base, as Gemma 3 does).</summary>
sealed record Rotary(Tensor Cos, Tensor Sin, Tensor LocalCos, Tensor LocalSin);

/// <summary>The attention masks of one forward pass: full-attention layers use <paramref name="Full"/> (or causal when
/// <paramref name="IsCausal"/>), sliding-window layers <paramref name="Window"/> (null while the window covers every key).</summary>
sealed record LayerMasks(Tensor? Full, bool IsCausal, Tensor? Window);

/// <summary><c>model.layers.{i}.*</c>: pre-norm attention and SwiGLU MLP with residuals.</summary>
sealed class DecoderLayer : nn.Module
{
    readonly Attention _attn;
    readonly SwiGlu _mlp;
    readonly RmsNorm _inNorm, _postNorm;
    readonly RmsNorm? _preFfnNorm, _postFfnNorm;                      // Gemma 2/3: post_attention_layernorm normalises the attention output

    public DecoderLayer(ModelConfig c, int index) : base($"layer{index}")
    {
        _attn = new Attention(c, index);
        _mlp = new SwiGlu(c);
        _inNorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, c.NormOffset);
        _postNorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, c.NormOffset);
        Sliding = c.IsSlidingLayer(index);
        register_module("self_attn", _attn);
        register_module("mlp", _mlp);
        register_module("input_layernorm", _inNorm);
        register_module("post_attention_layernorm", _postNorm);
        if (c.SandwichNorms)
        {
            _preFfnNorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, c.NormOffset);
            _postFfnNorm = new RmsNorm(c.HiddenSize, c.RmsNormEps, c.NormOffset);
            register_module("pre_feedforward_layernorm", _preFfnNorm);
            register_module("post_feedforward_layernorm", _postFfnNorm);
        }
    }

    /// <summary>Gemma 2/3's pre- and post-feedforward norms, or null.</summary>
    public (RmsNorm Pre, RmsNorm Post)? FeedForwardNorms => _preFfnNorm is null ? null : (_preFfnNorm, _postFfnNorm!);

    public Attention Attn => _attn;
    public SwiGlu Mlp => _mlp;
    public RmsNorm InputNorm => _inNorm;
    public RmsNorm PostNorm => _postNorm;
    /// <summary>Whether this layer attends within the sliding window.</summary>
    public bool Sliding { get; }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, bool isCausal, KvCache? cache)
    {
        if (_preFfnNorm is not null)
        {
            var a = x + _postNorm.forward(_attn.Forward(_inNorm.forward(x), cos, sin, mask, isCausal, cache));
            return a + _postFfnNorm!.forward(_mlp.forward(_preFfnNorm.forward(a)));
        }
        var h = x + _attn.Forward(_inNorm.forward(x), cos, sin, mask, isCausal, cache);
        return h + _mlp.forward(_postNorm.forward(h));
    }
}

/// <summary>Grouped-query self-attention with rotary position embeddings.</summary>
internal sealed class Attention : nn.Module
{
    readonly Linear _q, _k, _v, _o;
    readonly RmsNorm? _qNorm, _kNorm;                                  // Qwen3: per-head RMSNorm of q and k before the rotary embedding
    readonly int _heads, _kvHeads, _headDim, _layer;
    readonly double _scale;                                            // score factor: 1/√head_dim, or 1/√query_pre_attn_scalar (Gemma)
    readonly double? _softcap;                                         // Gemma 2: attn_logit_softcapping

    /// <summary>LoRA adapters by projection name (empty without LoRA).</summary>
    internal Dictionary<string, LoraAdapter> Adapters { get; } = [];

    /// <summary>The projections by Hugging Face name.</summary>
    internal IEnumerable<(string Name, Linear Linear)> Projections() => [("q_proj", _q), ("k_proj", _k), ("v_proj", _v), ("o_proj", _o)];

    Tensor Project(string name, Linear linear, Tensor x) =>
        Adapters.TryGetValue(name, out var a) && a.Switch.Enabled ? linear.forward(x) + a.Delta(x) : linear.forward(x);

    /// <summary>The weight the projection computes with now (LoRA merged in while its adapters are on) and its bias.</summary>
    internal (Tensor Weight, Tensor? Bias) Effective(string name) => LoraAdapter.EffectiveWeight(Adapters, name, Projections().First(p => p.Name == name).Linear);

    /// <summary>q/k/v weights (and biases) as one matrix, the parameters being views of its rows (the decode fast path).</summary>
    internal FusedLinear Qkv { get; }

    protected override void Dispose(bool disposing)
    {
        if (disposing) Qkv.Dispose();
        base.Dispose(disposing);
    }

    public int Heads => _heads;
    public int KvHeads => _kvHeads;
    public int HeadDim => _headDim;

    public Attention(ModelConfig c, int layer) : base("self_attn")
    {
        _heads = c.NumAttentionHeads; _kvHeads = c.NumKeyValueHeads; _headDim = c.HeadDim; _layer = layer;
        _scale = c.AttentionScale; _softcap = c.AttnLogitSoftcapping;
        _q = nn.Linear(c.HiddenSize, _heads * _headDim, hasBias: c.QkvBias);
        _k = nn.Linear(c.HiddenSize, _kvHeads * _headDim, hasBias: c.QkvBias);
        _v = nn.Linear(c.HiddenSize, _kvHeads * _headDim, hasBias: c.QkvBias);
        _o = nn.Linear(_heads * _headDim, c.HiddenSize, hasBias: c.OutputBias);
        register_module("q_proj", _q);
        register_module("k_proj", _k);
        register_module("v_proj", _v);
        register_module("o_proj", _o);
        Qkv = new FusedLinear(_q, _k, _v);                            // q/k/v parameters are row blocks of one matrix
        if (c.QkNorm)
        {
            _qNorm = new RmsNorm(_headDim, c.RmsNormEps, c.NormOffset);
            _kNorm = new RmsNorm(_headDim, c.RmsNormEps, c.NormOffset);
            register_module("q_norm", _qNorm);
            register_module("k_norm", _kNorm);
        }
    }

    /// <summary>The q_norm and k_norm factors (D each, (1 + w) for Gemma 3, a new tensor then), or null.</summary>
    public (Tensor Q, Tensor K)? QkNormWeights => _qNorm is null ? null : (_qNorm.Factor, _kNorm!.Factor);

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor? mask, bool isCausal, KvCache? cache)
    {
        long b = x.shape[0], t = x.shape[1];
        var q = Project("q_proj", _q, x).view(b, t, _heads, _headDim);                    // (B, T, H, D)
        var k = Project("k_proj", _k, x).view(b, t, _kvHeads, _headDim);                  // (B, T, Hkv, D)
        if (_qNorm is not null) { q = _qNorm.forward(q); k = _kNorm!.forward(k); }
        q = q.transpose(1, 2);                                                             // (B, H, T, D)
        k = k.transpose(1, 2);                                                             // (B, Hkv, T, D)
        var v = Project("v_proj", _v, x).view(b, t, _kvHeads, _headDim).transpose(1, 2);    // (B, Hkv, T, D)
        q = RotaryTable.Apply(q, cos, sin);
        k = RotaryTable.Apply(k, cos, sin);
        if (cache is not null) (k, v) = cache.Append(_layer, k, v);              // (B, Hkv, P+T, D)
        if (_kvHeads != _heads)
        {
            k = k.repeat_interleave(_heads / _kvHeads, dim: 1);                  // (B, H, P+T, D)
            v = v.repeat_interleave(_heads / _kvHeads, dim: 1);
        }
        Tensor y;                                                                          // (B, H, T, D)
        if (_softcap is { } cap)
        {
            // Gemma 2: scores · scale, soft-capped to (−cap, cap), then masked and softmaxed in float32 (eager, as Transformers does).
            var scores = matmul(q, k.transpose(2, 3)) * _scale;                           // (B, H, T, P+T)
            scores = (scores / cap).tanh() * cap;
            var allowed = mask ?? (isCausal ? ones(q.shape[2], k.shape[2], dtype: ScalarType.Bool).tril(k.shape[2] - q.shape[2]) : null);
            if (allowed is not null) scores = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity);
            y = matmul(scores.softmax(-1, ScalarType.Float32).to(v.dtype), v);
        }
        else
        {
            // SDPA divides by √D; another scale (query_pre_attn_scalar) is folded into q.
            double fold = _scale * Math.Sqrt(_headDim);
            if (Math.Abs(fold - 1.0) > 1e-12) q = q * fold;
            y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: mask, is_casual: isCausal);
        }
        return Project("o_proj", _o, y.transpose(1, 2).reshape(b, t, _heads * _headDim));   // (B, T, C)
    }
}

/// <summary>SwiGLU MLP: down(silu(gate(x)) * up(x)).</summary>
sealed class SwiGlu : nn.Module<Tensor, Tensor>
{
    readonly Linear _gate, _up, _down;
    readonly bool _gelu;                                               // Gemma: GeGLU with gelu_pytorch_tanh

    public SwiGlu(ModelConfig c) : base("mlp")
    {
        _gelu = c.HiddenActivation == "gelu_pytorch_tanh";
        _gate = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
        _up = nn.Linear(c.HiddenSize, c.IntermediateSize, hasBias: false);
        _down = nn.Linear(c.IntermediateSize, c.HiddenSize, hasBias: false);
        register_module("gate_proj", _gate);
        register_module("up_proj", _up);
        register_module("down_proj", _down);
        GateUp = new FusedLinear(_gate, _up);                         // gate/up parameters are row blocks of one matrix
    }

    /// <summary>gate/up weights as one matrix, the parameters being views of its rows (the decode fast path).</summary>
    internal FusedLinear GateUp { get; }

    protected override void Dispose(bool disposing)
    {
        if (disposing) GateUp.Dispose();
        base.Dispose(disposing);
    }

    /// <summary>LoRA adapters by projection name (empty without LoRA).</summary>
    internal Dictionary<string, LoraAdapter> Adapters { get; } = [];

    /// <summary>The projections by Hugging Face name.</summary>
    internal IEnumerable<(string Name, Linear Linear)> Projections() => [("gate_proj", _gate), ("up_proj", _up), ("down_proj", _down)];

    Tensor Project(string name, Linear linear, Tensor x) =>
        Adapters.TryGetValue(name, out var a) && a.Switch.Enabled ? linear.forward(x) + a.Delta(x) : linear.forward(x);

    /// <summary>The weight the projection computes with now (LoRA merged in while its adapters are on) and its bias.</summary>
    internal (Tensor Weight, Tensor? Bias) Effective(string name) => LoraAdapter.EffectiveWeight(Adapters, name, Projections().First(p => p.Name == name).Linear);

    public override Tensor forward(Tensor x)
    {
        var g = Project("gate_proj", _gate, x);
        return Project("down_proj", _down, (_gelu ? GeluTanh(g) : nn.functional.silu(g)) * Project("up_proj", _up, x));
    }

    /// <summary>gelu_pytorch_tanh: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).</summary>
    internal static Tensor GeluTanh(Tensor x) => 0.5 * x * (1.0 + (Math.Sqrt(2.0 / Math.PI) * (x + 0.044715 * x.pow(3))).tanh());
}

/// <summary>RMSNorm: x / sqrt(mean(x²) + eps) · weight, computed in float32; with <c>offset</c> (Gemma) · (1 + weight),
/// the product taken in float32 before the cast back.</summary>
sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    readonly Parameter _weight;
    readonly double _eps;
    readonly bool _offset;

    public Tensor Weight => _weight;
    public double Eps => _eps;
    /// <summary>Whether the factor is 1 + weight (Gemma).</summary>
    public bool Offset => _offset;
    /// <summary>What normalised values are multiplied by: the weight, or 1 + weight (a new, detached tensor) with the offset.</summary>
    public Tensor Factor => _offset ? (_weight.detach() + 1.0) : _weight.detach();

    public RmsNorm(long dim, double eps, bool offset = false) : base("norm")
    {
        _weight = new Parameter((offset ? zeros(dim) : ones(dim)).DetachFromDisposeScope());
        _eps = eps;
        _offset = offset;
        register_parameter("weight", _weight);
    }

    public override Tensor forward(Tensor x)
    {
        var x32 = x.to(ScalarType.Float32);
        var normed = x32 * (x32.pow(2).mean([-1L], keepdim: true) + _eps).rsqrt();
        if (_offset) return (normed * (_weight.to(ScalarType.Float32) + 1.0)).to(x.dtype);
        return _weight * normed.to(x.dtype);
    }
}

/// <summary>
/// Precomputed rotary cos/sin tables (Hugging Face's rotate-half convention), already multiplied by the scaling's attention
/// factor (yarn). With dynamic NTK scaling, a forward pass whose positions reach past the original length gets cos/sin
/// computed for that pass's length instead (<see cref="Lookup"/>, <see cref="LookupSigned"/>).
/// </summary>
sealed class RotaryTable
{
    readonly double[] _invFreq;
    readonly double _scale;
    readonly int _headDim;
    readonly double _theta;
    readonly RopeScaling? _scaling;
    Tensor _cos, _sin;                                                // (L, D)
    long _length;

    public RotaryTable(ModelConfig c)
    {
        _headDim = c.HeadDim;
        _theta = c.RopeTheta;
        _scaling = c.RopeScaling;
        (_invFreq, _scale) = Frequencies(_scaling is { IsDynamic: true } d ? d.DynamicFrom : c.MaxPositionEmbeddings);
        (_cos, _sin) = Build(Math.Min(c.MaxPositionEmbeddings, 2048));
    }

    (double[], double) Frequencies(long seqLen)
    {
        if (_scaling is not null) return _scaling.Frequencies(_theta, _headDim, seqLen);
        var inv = new double[_headDim / 2];
        for (int i = 0; i < inv.Length; i++) inv[i] = 1.0 / Math.Pow(_theta, 2.0 * i / _headDim);
        return (inv, 1.0);
    }

    /// <summary>Dynamic scaling: the frequencies of a pass reaching <paramref name="seqLen"/> positions, or null when the table's apply.</summary>
    double[]? DynamicFrequencies(long seqLen) =>
        _scaling is { IsDynamic: true } s && seqLen > s.DynamicFrom ? Frequencies(seqLen).Item1 : null;

    (Tensor, Tensor) Build(long length)
    {
        using var scope = NewDisposeScope();
        var t = arange(length, dtype: ScalarType.Float64);
        var freqs = outer(t, tensor(_invFreq, dtype: ScalarType.Float64));   // (L, D/2)
        var emb = cat([freqs, freqs], -1);                                  // (L, D)
        _length = length;
        var c = (emb.cos() * _scale).to(ScalarType.Float32).MoveToOuterDisposeScope();
        var s = (emb.sin() * _scale).to(ScalarType.Float32).MoveToOuterDisposeScope();
        c.DetachFromDisposeScope(); s.DetachFromDisposeScope();
        return (c, s);
    }

    /// <summary>cos and sin (N, D) of positions <paramref name="flat"/> (N) with the given inverse frequencies, computed directly.</summary>
    (Tensor Cos, Tensor Sin) Direct(Tensor flat, double[] invFreq)
    {
        var freqs = outer(flat.to(ScalarType.Float64), tensor(invFreq, dtype: ScalarType.Float64));   // (N, D/2)
        var emb = cat([freqs, freqs], -1);                                                             // (N, D)
        return ((emb.cos() * _scale).to(ScalarType.Float32), (emb.sin() * _scale).to(ScalarType.Float32));
    }

    /// <summary>Grows the tables to hold positions 0 … <paramref name="need"/> − 1.</summary>
    public void EnsureLength(long need)
    {
        if (need <= _length) return;
        var old = (_cos, _sin);
        (_cos, _sin) = Build(Math.Max(need, _length * 2));
        old._cos.Dispose(); old._sin.Dispose();
        _sinSigned?.Dispose();
        _sinSigned = null;
    }

    Tensor? _sinSigned;

    /// <summary>(L, D) tables: cos, and sin with its first half negated, so that rotate_half(x)·sin = roll(x, D/2)·sinSigned.</summary>
    public (Tensor Cos, Tensor SinSigned) Tables()
    {
        if (_sinSigned is null)
        {
            using var scope = NewDisposeScope();
            long half = _headDim / 2;
            _sinSigned = cat([-_sin.narrow(1, 0, half), _sin.narrow(1, half, half)], 1).MoveToOuterDisposeScope();
            _sinSigned.DetachFromDisposeScope();
        }
        return (_cos, _sinSigned);
    }

    /// <summary>cos and signed sin (see <see cref="Tables"/>), (N, D), of the positions <paramref name="flat"/> (N), which are
    /// all below <paramref name="bound"/>.</summary>
    public (Tensor Cos, Tensor SinSigned) LookupSigned(Tensor flat, long bound)
    {
        if (_scaling is { IsDynamic: true } s && bound > s.DynamicFrom
            && DynamicFrequencies(flat.numel() == 0 ? 0 : flat.max().item<long>() + 1) is { } inv)
        {
            var (cos, sin) = Direct(flat, inv);
            long half = _headDim / 2;
            return (cos, cat([-sin.narrow(1, 0, half), sin.narrow(1, half, half)], 1));
        }
        EnsureLength(bound);
        var (cosTable, sinTable) = Tables();
        return (cosTable.index_select(0, flat), sinTable.index_select(0, flat));
    }

    public (Tensor Cos, Tensor Sin) Lookup(Tensor pos)
    {
        long need = pos.numel() == 0 ? 0 : pos.max().item<long>() + 1;
        long b = pos.shape[0], t = pos.shape[1];
        var flat = pos.reshape(-1);
        if (DynamicFrequencies(need) is { } inv)
        {
            var (cos, sin) = Direct(flat, inv);
            return (cos.view(b, 1, t, _headDim), sin.view(b, 1, t, _headDim));
        }
        EnsureLength(need);
        return (_cos.index_select(0, flat).view(b, 1, t, _headDim), _sin.index_select(0, flat).view(b, 1, t, _headDim));
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        long half = x.shape[^1] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }
}
