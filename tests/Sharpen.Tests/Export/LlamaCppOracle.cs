using System.Text;
using LLama;
using LLama.Common;
using LLama.Native;
using Sharpen.LlamaCpp;
using Sharpen.Models;
using static TorchSharp.torch;

namespace Sharpen.Tests.Export;

/// <summary>
/// llama.cpp itself (LLamaSharp 0.30.0, CPU backend) as the oracle for exported GGUF files: ids go in as token ids, one
/// sequence at a time, with a float32 KV cache and no flash attention, so f32 weights should reproduce Sharpen up to rounding.
/// </summary>
sealed class LlamaCppOracle : IDisposable
{
    readonly LLamaWeights _weights;
    readonly LLamaContext _context;

    public LlamaCppOracle(string path)
    {
        LlamaCppRuntime.EnsureConfigured();
        var p = new ModelParams(path)
        {
            ContextSize = 256, BatchSize = 256, UBatchSize = 256, Threads = 2, BatchThreads = 2, GpuLayerCount = 0,
            FlashAttention = false, TypeK = GGMLType.GGML_TYPE_F32, TypeV = GGMLType.GGML_TYPE_F32,
        };
        _weights = LLamaWeights.LoadFromFile(p);
        _context = _weights.CreateContext(p);
    }

    public int VocabCount => _weights.Vocab.Count;
    public int? Bos => _weights.Vocab.BOS is { } t ? (int)t : null;
    public int? Eos => _weights.Vocab.EOS is { } t ? (int)t : null;

    /// <summary>Logits at the last position of <paramref name="ids"/>.</summary>
    public float[] LastLogits(IReadOnlyList<int> ids)
    {
        _context.NativeHandle.MemoryClear(true);
        var batch = new LLamaBatch();
        for (int i = 0; i < ids.Count; i++) batch.Add((LLamaToken)ids[i], (LLamaPos)i, (LLamaSeqId)0, i == ids.Count - 1);
        Assert.Equal(DecodeResult.Ok, _context.NativeHandle.Decode(batch));
        return _context.NativeHandle.GetLogitsIth(ids.Count - 1).ToArray();
    }

    /// <summary><paramref name="n"/> greedy tokens after <paramref name="prompt"/> (argmax of llama.cpp's logits).</summary>
    public int[] Greedy(IReadOnlyList<int> prompt, int n)
    {
        var logits = LastLogits(prompt);
        var output = new List<int>();
        int pos = prompt.Count;
        for (int step = 0; step < n; step++)
        {
            int next = Array.IndexOf(logits, logits.Max());
            output.Add(next);
            if (step == n - 1) break;
            var batch = new LLamaBatch();
            batch.Add((LLamaToken)next, (LLamaPos)pos++, (LLamaSeqId)0, true);
            Assert.Equal(DecodeResult.Ok, _context.NativeHandle.Decode(batch));
            logits = _context.NativeHandle.GetLogitsIth(0).ToArray();
        }
        return [.. output];
    }

    /// <summary>llama.cpp's tokenization; added/special tokens in the text are recognised, as Hugging Face does.</summary>
    public int[] Tokenize(string text, bool addBos) =>
        _weights.Tokenize(text, addBos, special: true, Encoding.UTF8).Select(t => (int)t).ToArray();

    public void Dispose()
    {
        _context.Dispose();
        _weights.Dispose();
    }

    // ---------------------------------------------------------------- Sharpen's side

    /// <summary>Sharpen's logits at the last position.</summary>
    public static float[] SharpenLastLogits(CausalLM model, IReadOnlyList<int> ids)
    {
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        model.eval();
        var input = tensor(ids.Select(i => (long)i).ToArray()).view(1, ids.Count);
        return model.Forward(input, lastLogitsOnly: true).Logits.reshape(-1).data<float>().ToArray();
    }

    /// <summary>Every parameter redrawn from a seeded generator: matrices N(0, scale²), norm weights U(0.5, 1.5), biases
    /// N(0, scale²), so that norms and biases matter (a fresh model has unit norms and zero biases) and logits are far apart.</summary>
    public static CausalLM Randomize(CausalLM model, long seed, double scale = 0.2)
    {
        using var _ = no_grad();
        using var gen = new Generator((ulong)seed);
        foreach (var (name, p) in model.named_parameters())
        {
            if (name.EndsWith("norm.weight", StringComparison.Ordinal)) p.uniform_(0.5, 1.5, gen);
            else p.normal_(0.0, scale, gen);
        }
        return model;
    }

    /// <summary>
    /// The stated bound on max |Δ logit| between llama.cpp and Sharpen: f32 1e-3 (float rounding only); f16 1% and q8_0 5%
    /// of the spread (max − min) of Sharpen's logits, since llama.cpp also rounds the activations to the weights' type inside
    /// its matmuls. A wrong layout (e.g. q/k not permuted) moves logits by half their spread.
    /// </summary>
    public static double Tolerance(Sharpen.Export.GgufDType dtype, float[] reference) => dtype switch
    {
        Sharpen.Export.GgufDType.F32 => 1e-3,
        Sharpen.Export.GgufDType.F16 => 0.01 * (reference.Max() - reference.Min()),
        _ => 0.05 * (reference.Max() - reference.Min()),
    };

    public static double MaxAbsDiff(float[] a, float[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double m = 0;
        for (int i = 0; i < a.Length; i++) m = Math.Max(m, Math.Abs(a[i] - b[i]));
        return m;
    }
}
