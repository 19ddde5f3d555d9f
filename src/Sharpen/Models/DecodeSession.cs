using static TorchSharp.torch;

namespace Sharpen.Models;

/// <summary>
/// The generation fast path of a <see cref="CausalLM"/>: a gradient-free forward over its own KV cache that computes what
/// <see cref="CausalLM.Forward"/> computes with fewer, larger operations. At the start it fuses each layer's q/k/v weights
/// into one matrix and gate/up into another (LoRA merged in while the adapters are on), so a layer runs 3 matmuls instead
/// of 7; grouped-query attention reads the cached keys as they are, the query heads of one KV head laid out as extra query
/// rows (no repeat_interleave copy of the cache); the key mask is built once per call, rotary tables are looked up once per
/// call and applied to q and k together. Training keeps using <see cref="CausalLM.Forward"/>, which this does not touch.
/// With a <see cref="KvBudget"/> the cache holds at most that many tokens per layer and head (H₂O eviction), and attention
/// runs eagerly so its weights can be accumulated. Owns its tensors (fused weights and cache): dispose it when done.
/// </summary>
public sealed class DecodeSession : IDisposable
{
    sealed record LayerWeights(Tensor Qkv, Tensor? QkvBias, Tensor O, Tensor? OBias, Tensor GateUp, Tensor Down,
        Tensor InNorm, Tensor PostNorm, Tensor? QkNorm = null, bool Sliding = false, Tensor? PreFfnNorm = null, Tensor? PostFfnNorm = null)
    {
        // Transposed views (C, out) of the weights for the decode-step lane's mm/addmm: made once per session, no copy.
        public Tensor QkvT { get; init; } = null!;
        public Tensor OT { get; init; } = null!;
        public Tensor GateUpT { get; init; } = null!;
        public Tensor DownT { get; init; } = null!;
    }

    readonly CausalLM _model;
    readonly LayerWeights[] _layers;
    readonly Tensor _embed, _finalNorm, _head;
    readonly double _eps;
    readonly double _embedScale, _scale;      // Gemma: embeddings × √hidden_size; score factor (1/√head_dim or 1/√query_pre_attn_scalar)
    readonly double? _softcap, _finalCap;     // Gemma 2: attention and final logit soft-capping
    readonly bool _gelu;                      // GeGLU (gelu_pytorch_tanh) instead of SwiGLU
    readonly int _heads, _kvHeads, _headDim, _ffn;
    readonly long _window;                    // sliding_window of the sliding layers (0: none)
    readonly KvBudget? _budget;
    readonly List<Tensor> _owned = [];
    readonly bool _stepLane;                  // decode steps may take StepLane (see there)
    readonly Tensor _headT;                   // (C, V) view of _head
    readonly Tensor _epsT;                    // RMSNorm's ε as a 0-d tensor, made once (a Scalar per call is two more native calls)

    Tensor[] _k, _v;                          // per layer (B, Hkv, S, D)
    Tensor[]? _score, _column, _valid;        // H₂O, per layer (B, Hkv, S): accumulated attention, token column, real token
    Tensor _keyOk;                            // full cache: (B, S) bool, real tokens; generated positions are real
    bool _padded;                             // some filled slot holds padding: decode steps need the key mask
    Tensor _nextPos;                          // (B) int64 rotary position of each row's next token
    long _filled;                             // slots in use (the same for every row, layer and head)
    long _column0;                            // sequence column of the next token
    long _maxPos;                             // upper bound of the positions used so far, for the rotary tables

    /// <summary>Sequences in the batch.</summary>
    public long Batch => _k[0].shape[0];
    /// <summary>Slots of the cache per layer and KV head: the capacity, or the H₂O budget + 1.</summary>
    public long Slots => _k[0].shape[2];
    /// <summary>Slots filled so far.</summary>
    public long Filled => _filled;
    /// <summary>Bytes of the keys and values the session allocated.</summary>
    public long CacheBytes => _k.Sum(t => t.NumberOfElements) * 2 * 4;

    internal DecodeSession(CausalLM model, long batch, long capacity, KvBudget? budget)
    {
        Torch.TorchRuntime.EnsureLoaded();
        budget?.Validate();
        _model = model;
        _budget = budget;
        var c = model.Config;
        _heads = c.NumAttentionHeads; _kvHeads = c.NumKeyValueHeads; _headDim = c.HeadDim; _ffn = c.IntermediateSize;
        _eps = c.RmsNormEps;
        _embedScale = c.EmbeddingScale; _scale = c.AttentionScale; _softcap = c.AttnLogitSoftcapping; _finalCap = c.FinalLogitSoftcapping;
        _gelu = c.HiddenActivation == "gelu_pytorch_tanh";
        _window = c.HasSlidingLayers ? c.SlidingWindow!.Value : 0;
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var stack = model.Stack;
        _layers = stack.Layers.Select(layer =>
        {
            // q/k/v and gate/up: the model's fused matrices themselves (its parameters are views of them, so nothing is
            // copied and in-place updates are seen); concatenated copies only while LoRA adapters are on or the parameters
            // were replaced by other tensors.
            var (qkv, qkvBias) = layer.Attn.Qkv.Plain(layer.Attn.Adapters, "q_proj", "k_proj", "v_proj") ?? FusedCopy(layer.Attn, "q_proj", "k_proj", "v_proj");
            var (gateUp, _) = layer.Mlp.GateUp.Plain(layer.Mlp.Adapters, "gate_proj", "up_proj") ?? FusedCopy(layer.Mlp, "gate_proj", "up_proj");
            var (wo, bo) = layer.Attn.Effective("o_proj");
            var (wd, _) = layer.Mlp.Effective("down_proj");
            return new LayerWeights(
                qkv,                                                          // (Hq·D + 2·Hkv·D, C)
                qkvBias,
                Keep(wo), bo is null ? null : Keep(bo),
                gateUp,                                                       // (2F, C)
                Keep(wd), Keep(layer.InputNorm.Factor), Keep(layer.PostNorm.Factor),      // norm factors: w, or 1 + w (Gemma)
                layer.Attn.QkNormWeights is { } qkn   // (Hq + Hkv, D): q_norm for the query heads, k_norm for the key heads
                    ? Keep(cat([qkn.Q.detach().expand(_heads, _headDim), qkn.K.detach().expand(_kvHeads, _headDim)], 0)) : null,
                layer.Sliding,
                layer.FeedForwardNorms is { } ffn ? Keep(ffn.Pre.Factor) : null,
                layer.FeedForwardNorms is { } ffn2 ? Keep(ffn2.Post.Factor) : null)
            {
                QkvT = Keep(qkv.t()), OT = Keep(wo.t()), GateUpT = Keep(gateUp.t()), DownT = Keep(wd.t()),
            };
        }).ToArray();
        _embed = Keep(stack.EmbedWeight.detach());
        _finalNorm = Keep(stack.Norm.Factor);
        _head = Keep((model.LmHeadWeight ?? stack.EmbedWeight).detach());
        _headT = Keep(_head.t());
        _epsT = Keep(tensor((float)_eps));
        _stepLane = budget is null && _softcap is null && _window == 0 && model.RopeLocal is null
                    && _layers.All(l => l.PreFfnNorm is null && !l.Sliding);

        long slots = budget is null ? capacity : budget.Budget + 1;
        _k = new Tensor[c.NumHiddenLayers];
        _v = new Tensor[c.NumHiddenLayers];
        for (int i = 0; i < _k.Length; i++)
        {
            _k[i] = zeros(batch, _kvHeads, slots, _headDim).DetachFromDisposeScope();
            _v[i] = zeros(batch, _kvHeads, slots, _headDim).DetachFromDisposeScope();
        }
        _keyOk = ones(batch, budget is null ? capacity : 1, dtype: ScalarType.Bool).DetachFromDisposeScope();
        _nextPos = zeros(batch, dtype: ScalarType.Int64).DetachFromDisposeScope();
        Capacity = capacity;
    }

    /// <summary>
    /// Whether Prefill and Step run the layers under torch's inference mode (default; tests and the bench profile turn it off
    /// to compare). Inference mode skips the autograd and view-tracking work every op does even under no_grad (version
    /// counters, view metadata, the autograd dispatch layer); the arithmetic is the same, bit for bit (tested). Tensors made
    /// inside are inference tensors, which torch refuses to modify in place outside the mode, so none is kept or returned: the
    /// rotary tables (cached on the model and grown on demand) are looked up before entering, the cache and the H₂O state are
    /// allocated outside (in-place writes to normal tensors are allowed inside), and the head projection runs after leaving,
    /// so the logits a caller receives are a normal tensor it may modify (tested).
    /// </summary>
    internal bool UseInferenceMode { get; set; } = true;

    /// <summary>Whether decode steps take the step lane (<see cref="StepLane"/>): full cache, no soft-capping, sliding window or
    /// sandwich norms.</summary>
    internal bool HasStepLane => _stepLane;
    /// <summary>Tests: decode steps take the general path even where the step lane applies.</summary>
    internal bool ForceGeneralStep { get; set; }

    /// <summary>Most positions (prompt + generated) a row may reach (a <see cref="Regroup"/> changes it).</summary>
    public long Capacity { get; private set; }

    // A fork: the parent's fused weights (shared, not owned) and a cache of its own.
    DecodeSession(DecodeSession parent, long batch, long capacity)
    {
        _model = parent._model;
        _layers = parent._layers;
        _embed = parent._embed; _finalNorm = parent._finalNorm; _head = parent._head;
        _heads = parent._heads; _kvHeads = parent._kvHeads; _headDim = parent._headDim; _ffn = parent._ffn; _eps = parent._eps;
        _embedScale = parent._embedScale; _scale = parent._scale; _softcap = parent._softcap; _finalCap = parent._finalCap; _gelu = parent._gelu;
        _window = parent._window;
        _headT = parent._headT; _epsT = parent._epsT; _stepLane = parent._stepLane;
        _k = new Tensor[_layers.Length];
        _v = new Tensor[_layers.Length];
        for (int i = 0; i < _k.Length; i++)
        {
            _k[i] = zeros(batch, _kvHeads, capacity, _headDim).DetachFromDisposeScope();
            _v[i] = zeros(batch, _kvHeads, capacity, _headDim).DetachFromDisposeScope();
        }
        _keyOk = ones(batch, capacity, dtype: ScalarType.Bool).DetachFromDisposeScope();
        _nextPos = zeros(batch, dtype: ScalarType.Int64).DetachFromDisposeScope();
        Capacity = capacity;
    }

    /// <summary>
    /// Continuous batching: a new, empty session of <paramref name="batch"/> rows and <paramref name="capacity"/> slots over this
    /// session's fused weights (shared, not copied; the fork must be disposed before this session). Prefill the fork with
    /// requests that arrive while this session decodes, then <see cref="Regroup"/> them in. Full cache only (no KV budget).
    /// </summary>
    public DecodeSession Fork(long batch, long capacity)
    {
        if (_budget is not null) throw new InvalidOperationException("continuous batching needs the full KV cache; this session has a KV budget");
        if (batch < 1 || capacity < 1) throw new ArgumentException($"a fork needs ≥ 1 row and ≥ 1 slot, got {batch} rows and {capacity} slots");
        return new DecodeSession(this, batch, capacity);
    }

    /// <summary>
    /// Continuous batching (full cache only): keeps the rows <paramref name="keep"/> in that order (finished sequences are
    /// left out and free their row), appends the rows of <paramref name="joining"/> (a prefilled <see cref="Fork"/>) after
    /// them, and lays the cache out again so that every row's newest token is in the last filled column: a shorter row gets
    /// masked left padding, each row keeps its own rotary positions, and columns that no remaining row uses are dropped.
    /// <paramref name="room"/> free slots follow for the next <see cref="Step"/>s. The next Step feeds one token per row of the
    /// new layout. Attention sees exactly the keys it saw before, so logits are those of each sequence decoded on its own
    /// (up to float rounding of the padded reductions).
    /// </summary>
    public void Regroup(IReadOnlyList<long> keep, DecodeSession? joining, long room)
    {
        ArgumentNullException.ThrowIfNull(keep);
        if (_budget is not null || joining?._budget is not null) throw new InvalidOperationException("regrouping needs the full KV cache (no KV budget)");
        if (joining is not null && (joining._filled == 0 || !ReferenceEquals(joining._layers, _layers)))
            throw new ArgumentException("the joining session must be a prefilled fork of this one");
        if (room < 1) throw new ArgumentException($"room must be ≥ 1, got {room}");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        long kept = keep.Count, joined = joining?.Batch ?? 0, rows = kept + joined;
        var keepIdx = tensor(keep.ToArray(), dtype: ScalarType.Int64);
        long first = _filled;                                                               // first column a kept row uses
        if (kept > 0 && _filled > 0)
        {
            var used = _keyOk.index_select(0, keepIdx).narrow(1, 0, _filled).any(0).nonzero();   // (U, 1)
            if (used.shape[0] > 0) first = used[0, 0].item<long>();
        }
        long mine = kept == 0 ? 0 : _filled - first, theirs = joining?._filled ?? 0;
        long width = Math.Max(mine, theirs), slots = width + room;
        for (int i = 0; i < _k.Length; i++)
        {
            var k = zeros(rows, _kvHeads, slots, _headDim);
            var v = zeros(rows, _kvHeads, slots, _headDim);
            if (mine > 0)
            {
                k.narrow(0, 0, kept).narrow(2, width - mine, mine).copy_(_k[i].index_select(0, keepIdx).narrow(2, first, mine));
                v.narrow(0, 0, kept).narrow(2, width - mine, mine).copy_(_v[i].index_select(0, keepIdx).narrow(2, first, mine));
            }
            if (joining is not null)
            {
                k.narrow(0, kept, joined).narrow(2, width - theirs, theirs).copy_(joining._k[i].narrow(2, 0, theirs));
                v.narrow(0, kept, joined).narrow(2, width - theirs, theirs).copy_(joining._v[i].narrow(2, 0, theirs));
            }
            _k[i].Dispose(); _v[i].Dispose();
            _k[i] = k.DetachFromDisposeScope();
            _v[i] = v.DetachFromDisposeScope();
        }
        var keyOk = ones(rows, slots, dtype: ScalarType.Bool);                             // generated positions are real
        keyOk.narrow(1, 0, width).fill_(false);
        if (mine > 0) keyOk.narrow(0, 0, kept).narrow(1, width - mine, mine).copy_(_keyOk.index_select(0, keepIdx).narrow(1, first, mine));
        if (joining is not null) keyOk.narrow(0, kept, joined).narrow(1, width - theirs, theirs).copy_(joining._keyOk.narrow(1, 0, theirs));
        var nextPos = joining is null ? _nextPos.index_select(0, keepIdx) : cat([_nextPos.index_select(0, keepIdx), joining._nextPos], 0);
        _keyOk.Dispose(); _nextPos.Dispose();
        _keyOk = keyOk.DetachFromDisposeScope();
        _nextPos = nextPos.DetachFromDisposeScope();
        _maxPos = Math.Max(_maxPos, joining?._maxPos ?? 0);
        _filled = _column0 = width;
        _padded = true;
        Capacity = slots;
    }

    (Tensor, Tensor?) FusedCopy(Attention attn, params string[] names)
    {
        var parts = names.Select(attn.Effective).ToArray();
        return (Keep(cat(parts.Select(p => p.Weight).ToArray(), 0)), parts[0].Bias is null ? null : Keep(cat(parts.Select(p => p.Bias!).ToArray(), 0)));
    }

    (Tensor, Tensor?) FusedCopy(SwiGlu mlp, params string[] names) =>
        (Keep(cat(names.Select(n => mlp.Effective(n).Weight).ToArray(), 0)), null);

    Tensor Keep(Tensor t)
    {
        t.DetachFromDisposeScope();
        _owned.Add(t);
        return t;
    }

    /// <summary>
    /// Runs the (left-padded) prompts and returns the logits of their last position.
    /// </summary>
    /// <param name="ids">(B, P) int64.</param>
    /// <param name="mask">(B, P) 1 for real tokens, 0 for left padding.</param>
    /// <returns>(B, V) logits; belongs to the caller's dispose scope.</returns>
    public Tensor Prefill(Tensor ids, Tensor mask)
    {
        if (_filled > 0) throw new InvalidOperationException("prefill starts a session; it has already run");
        long b = ids.shape[0], p = ids.shape[1];
        if (b != Batch) throw new ArgumentException($"prefill of {b} rows into a session of {Batch}");
        if (p > Capacity) throw new ArgumentException($"the prompt ({p} positions) does not fit the session's capacity {Capacity}");
        using var _ = no_grad();
        var am = mask.to(ScalarType.Int64);
        var pos = (am.cumsum(1) - 1).clamp_min(0);                                          // (B, P)
        _nextPos.copy_(am.sum(1));
        _maxPos = p;
        var keyOk = am.to(ScalarType.Bool);                                                 // (B, P)
        _padded = !keyOk.all().item<bool>();
        if (_budget is null) _keyOk.narrow(1, 0, p).copy_(keyOk);
        else GrowBudgetState(p, keyOk);

        var qIdx = arange(p, dtype: ScalarType.Int64).view(p, 1);
        var kIdx = arange(p, dtype: ScalarType.Int64).view(1, p);
        var attend = (keyOk.view(b, 1, 1, p) & (kIdx <= qIdx).view(1, 1, p, p)) | (kIdx == qIdx).view(1, 1, p, p);  // (B, 1, P, P)
        return Run(ids, pos, attend);
    }

    /// <summary>Feeds one token per row and returns the next logits.</summary>
    /// <param name="ids">(B) or (B, 1) int64.</param>
    /// <returns>(B, V) logits; belongs to the caller's dispose scope.</returns>
    public Tensor Step(Tensor ids)
    {
        if (_filled == 0) throw new InvalidOperationException("run Prefill first");
        if (_column0 + 1 > Capacity) throw new InvalidOperationException($"the session holds {Capacity} positions; all are used");
        using var _ = no_grad();
        long b = Batch;
        if (_stepLane && !ForceGeneralStep) return StepLane(ids, b);
        var pos = _nextPos.view(b, 1).clone();                                               // (B, 1)
        _nextPos.add_(1);
        _maxPos += 1;
        Tensor? attend = _budget is null && (_padded || _window > 0) ? _keyOk.narrow(1, 0, _filled + 1).view(b, 1, 1, _filled + 1) : null;   // (B, 1, 1, L)
        if (_budget is not null)
            for (int i = 0; i < _k.Length; i++)
            {
                _valid![i].narrow(2, _filled, 1).fill_(true);
                _column![i].narrow(2, _filled, 1).fill_(_column0);
            }
        return Run(ids.view(b, 1), pos, attend);
    }

    /// <summary>
    /// A decode step of the common case (full cache, no soft-capping, no sliding window, no sandwich norms: Llama, Qwen2/3,
    /// Mistral, Phi-3 shapes): the same arithmetic as <see cref="Run"/> with one token per row, in fewer native calls
    /// (issue 16 item 3: at batch 1 a step is per-call overhead more than arithmetic). Activations stay (B, C) so no
    /// reshape of the single position is needed; projections are mm/addmm on weight views transposed once per session,
    /// the residual adds folded into addmm; RMSNorm runs its four element-wise ops in place on its own temporaries with ε
    /// held as a tensor; the new key and value are written through a select of their cache slot; the query is a view
    /// (B, Hkv, G, D) of the rotated heads; the SwiGLU activation is computed in place in the gate/up output.
    /// </summary>
    Tensor StepLane(Tensor ids, long b)
    {
        long start = _filled, len = start + 1;
        _maxPos += 1;
        var (cosRows, sinRows) = _model.Rope.LookupSigned(_nextPos, _maxPos + 1);          // (B, D): the rows' positions
        _nextPos.add_(1);
        var cos = cosRows.view(b, 1, _headDim);                                             // (B, 1, D)
        var sin = sinRows.view(b, 1, _headDim);
        // A cache with padding needs its key mask; (B, 1, 1, L) broadcasts over the KV heads and their G query rows.
        var mask = _padded ? _keyOk.narrow(1, 0, len).view(b, 1, 1, len) : null;
        Tensor x;
        using (UseInferenceMode ? inference_mode() : null)                                  // see UseInferenceMode
        {
            x = _embed.index_select(0, ids.view(b));                                        // (B, C)
            if (_embedScale != 1.0) x = x * _embedScale;
            for (int i = 0; i < _layers.Length; i++) x = LaneLayer(i, x, cos, sin, mask, start, b);
            x = RmsNormInPlace(x, _finalNorm);
        }
        _filled += 1;
        _column0 += 1;
        var logits = x.mm(_headT);                                                          // (B, V), a normal tensor
        return _finalCap is { } cap ? (logits / cap).tanh() * cap : logits;
    }

    Tensor LaneLayer(int i, Tensor x, Tensor cos, Tensor sin, Tensor? mask, long start, long b)
    {
        var w = _layers[i];
        long hq = _heads, hkv = _kvHeads, d = _headDim, g = hq / hkv;
        var xn = RmsNormInPlace(x, w.InNorm);
        var qkv = (w.QkvBias is null ? xn.mm(w.QkvT) : w.QkvBias.addmm(xn, w.QkvT)).view(b, hq + 2 * hkv, d);   // (B, Hq+2Hkv, D)
        var qk = qkv.narrow(1, 0, hq + hkv);                                                // (B, Hq+Hkv, D)
        if (w.QkNorm is not null) qk = RmsNorm(qk, w.QkNorm);
        qk = (qk * cos).addcmul_(qk.roll(d / 2, -1), sin, 1);                               // rotary on q and k at once
        _k[i].select(2, start).copy_(qk.narrow(1, hq, hkv));                                // slot (B, Hkv, D)
        _v[i].select(2, start).copy_(qkv.narrow(1, hq + hkv, hkv));
        var q = qk.narrow(1, 0, hq).view(b, hkv, g, d);                                     // (B, Hkv, G, D): G query rows per KV head
        if (Math.Abs(_scale * Math.Sqrt(d) - 1.0) > 1e-12) q = q * (_scale * Math.Sqrt(d));
        var y = nn.functional.scaled_dot_product_attention(q, _k[i].narrow(2, 0, start + 1), _v[i].narrow(2, 0, start + 1), attn_mask: mask);
        var h = x.addmm(y.reshape(b, hq * d), w.OT);                                        // (B, C): x + attention output
        if (w.OBias is not null) h.add_(w.OBias);
        var gu = RmsNormInPlace(h, w.PostNorm).mm(w.GateUpT);                               // (B, 2F)
        var gate = gu.narrow(1, 0, _ffn);
        var act = (_gelu ? SwiGlu.GeluTanh(gate) : gate.silu_()).mul_(gu.narrow(1, _ffn, _ffn));   // (B, F), a view of gu unless GeGLU
        return h.addmm(act, w.DownT);                                                       // (B, C): h + MLP output
    }

    // RMSNorm(x)·w with the same arithmetic as RmsNorm, its temporaries updated in place: 6 native calls, 3 new tensors.
    Tensor RmsNormInPlace(Tensor x, Tensor weight) =>
        x.mul(x.square().mean([-1L], keepdim: true).add_(_epsT).rsqrt_()).mul_(weight);

    /// <summary>Row i becomes row <paramref name="rows"/>[i] (e.g. a prompt's cache repeated for N samples).</summary>
    public void SelectRows(Tensor rows)
    {
        static Tensor Pick(Tensor t, Tensor rows)
        {
            var picked = t.index_select(0, rows).DetachFromDisposeScope();
            t.Dispose();
            return picked;
        }
        for (int i = 0; i < _k.Length; i++)
        {
            _k[i] = Pick(_k[i], rows);
            _v[i] = Pick(_v[i], rows);
            if (_score is not null) { _score[i] = Pick(_score[i], rows); _column![i] = Pick(_column[i], rows); _valid![i] = Pick(_valid[i], rows); }
        }
        _keyOk = Pick(_keyOk, rows);
        _nextPos = Pick(_nextPos, rows);
    }

    // H₂O bookkeeping for a prompt of p columns: slots grow to hold it (then shrink back to the budget after prefill).
    void GrowBudgetState(long p, Tensor keyOk)
    {
        long b = Batch, slots = Math.Max(_budget!.Budget, p) + 1;
        _score = new Tensor[_k.Length]; _column = new Tensor[_k.Length]; _valid = new Tensor[_k.Length];
        for (int i = 0; i < _k.Length; i++)
        {
            if (slots > _k[i].shape[2])
            {
                _k[i].Dispose(); _v[i].Dispose();
                _k[i] = zeros(b, _kvHeads, slots, _headDim).DetachFromDisposeScope();
                _v[i] = zeros(b, _kvHeads, slots, _headDim).DetachFromDisposeScope();
            }
            _score[i] = zeros(b, _kvHeads, slots).DetachFromDisposeScope();
            _column[i] = full(b, _kvHeads, slots, -1L, dtype: ScalarType.Int64).DetachFromDisposeScope();
            _valid[i] = zeros(b, _kvHeads, slots, dtype: ScalarType.Bool).DetachFromDisposeScope();
            _column[i].narrow(2, 0, p).copy_(arange(p, dtype: ScalarType.Int64).view(1, 1, p));
            _valid[i].narrow(2, 0, p).copy_(keyOk.view(b, 1, p));
        }
    }

    Tensor Run(Tensor ids, Tensor pos, Tensor? attend)
    {
        long b = ids.shape[0], t = ids.shape[1], start = _filled;
        var (cosRows, sinRows) = _model.Rope.LookupSigned(pos.reshape(-1), _maxPos + 1);
        var cos = cosRows.view(b, t, 1, _headDim);                                         // (B, T, 1, D)
        var sin = sinRows.view(b, t, 1, _headDim);                                         // (B, T, 1, D)
        var (cosLocal, sinLocal) = (cos, sin);                                             // Gemma 3: sliding layers' own base
        if (_model.RopeLocal is { } localRope)
        {
            var (cl, sl) = localRope.LookupSigned(pos.reshape(-1), _maxPos + 1);
            (cosLocal, sinLocal) = (cl.view(b, t, 1, _headDim), sl.view(b, t, 1, _headDim));
        }
        int g = _heads / _kvHeads;
        // Grouped layout: the G query heads of one KV head are G·T query rows, so the mask repeats G times along rows.
        Tensor? Grouped(Tensor? m) => m is null || t == 1 ? m
            : m.unsqueeze(2).expand(b, 1, g, t, m.shape[3]).reshape(b, 1, g * t, m.shape[3]);   // (B, 1, G·T, L)
        // A step of a cache without padding attends to every filled slot: no mask, sdpa's unmasked kernel.
        var mask = t == 1 && !_padded ? null : Grouped(attend);
        // Sliding layers: without a budget slots are columns, so a query at column q sees slots q − W + 1 … q.
        Tensor? windowMask = null;
        if (_window > 0 && attend is not null && start + t > _window)   // within the window sliding = full attention
        {
            var qCol = arange(start, start + t, dtype: ScalarType.Int64).view(t, 1);
            var kCol = arange(0, attend.shape[3], dtype: ScalarType.Int64).view(1, -1);
            windowMask = Grouped(attend & ((kCol > qCol - _window) | (kCol == qCol)).view(1, 1, t, -1));
        }
        Tensor last;                                                                       // (B, C)
        using (UseInferenceMode ? inference_mode() : null)                                  // see UseInferenceMode
        {
            var x = _embed.index_select(0, ids.reshape(-1)).view(b, t, -1);               // (B, T, C)
            if (_embedScale != 1.0) x = x * _embedScale;
            for (int i = 0; i < _layers.Length; i++)
                x = _layers[i].Sliding ? Layer(i, x, cosLocal, sinLocal, windowMask ?? mask, start) : Layer(i, x, cos, sin, mask, start);
            _filled += t;
            _column0 += t;
            if (_budget is not null) Evict();
            last = RmsNorm(x.narrow(1, t - 1, 1), _finalNorm).view(b, -1);
        }
        var logits = nn.functional.linear(last, _head);                                    // (B, V), a normal tensor
        return _finalCap is { } cap ? (logits / cap).tanh() * cap : logits;
    }

    Tensor Layer(int i, Tensor x, Tensor cos, Tensor sin, Tensor? mask, long start)
    {
        var w = _layers[i];
        long b = x.shape[0], t = x.shape[1], hq = _heads, hkv = _kvHeads, d = _headDim, g = hq / hkv, half = d / 2;
        var qkv = nn.functional.linear(RmsNorm(x, w.InNorm), w.Qkv, w.QkvBias).view(b, t, hq + 2 * hkv, d);   // (B, T, Hq+2Hkv, D)
        var qk = qkv.narrow(2, 0, hq + hkv);                                                // (B, T, Hq+Hkv, D)
        if (w.QkNorm is not null) qk = RmsNorm(qk, w.QkNorm);                               // Qwen3: per-head q/k norm
        qk = (qk * cos).addcmul_(qk.roll(half, -1), sin, 1);                                    // rotary on q and k at once
        var k = qk.narrow(2, hq, hkv).transpose(1, 2);                                      // (B, Hkv, T, D)
        var v = qkv.narrow(2, hq + hkv, hkv).transpose(1, 2);                               // (B, Hkv, T, D)
        _k[i].narrow(2, start, t).copy_(k);
        _v[i].narrow(2, start, t).copy_(v);
        long len = start + t;
        var keys = _k[i].narrow(2, 0, len);                                                  // (B, Hkv, L, D)
        var values = _v[i].narrow(2, 0, len);
        var q = qk.narrow(2, 0, hq).reshape(b, t, hkv, g, d).permute(0, 2, 3, 1, 4).reshape(b, hkv, g * t, d);   // (B, Hkv, G·T, D)

        Tensor y;                                                                            // (B, Hkv, G·T, D)
        if (_budget is null && _softcap is null)
            y = nn.functional.scaled_dot_product_attention(Math.Abs(_scale * Math.Sqrt(d) - 1.0) > 1e-12 ? q * (_scale * Math.Sqrt(d)) : q, keys, values, attn_mask: mask);
        else if (_budget is null)
        {
            var scores = matmul(q, keys.transpose(2, 3)) * _scale;                           // (B, Hkv, G·T, L)
            scores = (scores / _softcap!.Value).tanh() * _softcap.Value;
            if (mask is not null) scores = scores.masked_fill(mask.logical_not(), double.NegativeInfinity);
            y = matmul(scores.softmax(-1), values);
        }
        else
        {
            // Prefill's mask already hides padding (a padded query sees itself only); a step sees the slots that hold tokens.
            var allowed = mask ?? _valid![i].narrow(2, 0, len).unsqueeze(2);                 // (B, 1, G·T, L) or (B, Hkv, 1, L)
            if (mask is null && w.Sliding)                                                   // a step: keep the slots whose column is in the window
                allowed = allowed & (_column![i].narrow(2, 0, len) > _column0 - _window).unsqueeze(2);
            var scores = matmul(q, keys.transpose(2, 3)) * _scale;                     // (B, Hkv, G·T, L)
            if (_softcap is { } cap) scores = (scores / cap).tanh() * cap;
            var weights = scores.masked_fill(allowed.logical_not(), double.NegativeInfinity).softmax(-1);
            _score![i].narrow(2, 0, len).add_(weights.sum(2));                                // attention each key received
            y = matmul(weights, values);
        }
        y = y.view(b, hkv, g, t, d).permute(0, 3, 1, 2, 4).reshape(b, t, hq * d);          // (B, T, Hq·D)
        var attnOut = nn.functional.linear(y, w.O, w.OBias);                               // (B, T, C)
        bool sandwich = w.PreFfnNorm is not null;                                           // Gemma 2/3: post-attention norm on the output
        var h = x + (sandwich ? RmsNorm(attnOut, w.PostNorm) : attnOut);
        var gu = nn.functional.linear(RmsNorm(h, sandwich ? w.PreFfnNorm! : w.PostNorm), w.GateUp);   // (B, T, 2F)
        var gate = gu.narrow(-1, 0, _ffn);
        var act = (_gelu ? SwiGlu.GeluTanh(gate) : nn.functional.silu(gate)) * gu.narrow(-1, _ffn, _ffn);   // (B, T, F)
        var down = nn.functional.linear(act, w.Down);                                       // (B, T, C)
        return h + (sandwich ? RmsNorm(down, w.PostFfnNorm!) : down);
    }

    Tensor RmsNorm(Tensor x, Tensor weight) =>
        x * (x.pow(2).mean([-1L], keepdim: true) + _eps).rsqrt() * weight;

    // H₂O: shrink every layer's cache back to the budget (the whole prompt's worth after prefill, one token per decode step).
    void Evict()
    {
        var budget = _budget!;
        if (_filled <= budget.Budget) return;
        long newest = _column0 - 1, b = Batch, d = _headDim;
        for (int i = 0; i < _k.Length; i++)
        {
            var score = _score![i].narrow(2, 0, _filled);
            var column = _column![i].narrow(2, 0, _filled);
            var valid = _valid![i].narrow(2, 0, _filled);
            if (_filled == budget.Budget + 1)
            {
                // Move the newest token (slot _filled − 1) into the victim's slot.
                var victim = HeavyHitters.Victims(score, column, valid, newest, budget.Recent).unsqueeze(-1);   // (B, Hkv, 1)
                long last = _filled - 1;
                var idx = victim.unsqueeze(-1).expand(b, _kvHeads, 1, d);                  // (B, Hkv, 1, D)
                _k[i].scatter_(2, idx, _k[i].narrow(2, last, 1).clone());
                _v[i].scatter_(2, idx, _v[i].narrow(2, last, 1).clone());
                _score[i].scatter_(2, victim, _score[i].narrow(2, last, 1).clone());
                _column[i].scatter_(2, victim, _column[i].narrow(2, last, 1).clone());
                _valid[i].scatter_(2, victim, _valid[i].narrow(2, last, 1).clone());
            }
            else
            {
                var keep = HeavyHitters.Keep(score, column, valid, newest, budget.Budget, budget.Recent);       // (B, Hkv, K)
                var idx = keep.unsqueeze(-1).expand(b, _kvHeads, budget.Budget, d);
                var k = _k[i].gather(2, idx); var v = _v[i].gather(2, idx);
                var s = _score[i].gather(2, keep); var c = _column[i].gather(2, keep); var ok = _valid[i].gather(2, keep);
                _k[i].narrow(2, 0, budget.Budget).copy_(k); _v[i].narrow(2, 0, budget.Budget).copy_(v);
                _score[i].narrow(2, 0, budget.Budget).copy_(s); _column[i].narrow(2, 0, budget.Budget).copy_(c);
                _valid[i].narrow(2, 0, budget.Budget).copy_(ok);
            }
            long from = budget.Budget, count = _k[i].shape[2] - from;
            _valid[i].narrow(2, from, count).fill_(false);
            _score[i].narrow(2, from, count).zero_();
            _column[i].narrow(2, from, count).fill_(-1);
        }
        _filled = budget.Budget;
    }

    /// <summary>H₂O: the sequence columns of the tokens layer <paramref name="layer"/> keeps, per row and KV head (−1 = empty slot).</summary>
    internal long[,][] KeptColumns(int layer)
    {
        if (_column is null) throw new InvalidOperationException("no KV budget");
        var cols = _column[layer].narrow(2, 0, _filled).masked_fill(_valid![layer].narrow(2, 0, _filled).logical_not(), -1).contiguous().data<long>().ToArray();
        long b = Batch, f = _filled;
        var result = new long[b, _kvHeads][];
        for (int r = 0; r < b; r++)
            for (int h = 0; h < _kvHeads; h++)
                result[r, h] = cols.AsSpan((int)((r * _kvHeads + h) * f), (int)f).ToArray();
        return result;
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _owned) t.Dispose();
        _owned.Clear();
        foreach (var t in _k.Concat(_v).Concat(_score ?? []).Concat(_column ?? []).Concat(_valid ?? [])) t.Dispose();
        _k = []; _v = [];
        _keyOk.Dispose();
        _nextPos.Dispose();
    }
}
