using Sharpen.Models;

namespace Sharpen.Tests.Models;

/// <summary>
/// A deliberately naive double-precision Llama forward pass written from the equations (loops over
/// plain arrays, no torch), used as the independent reference for <see cref="CausalLM"/>.
/// </summary>
static class ReferenceLlama
{
    /// <param name="rope">Inverse frequencies and the cos/sin factor for a sequence of the given length; default θ^(-2i/D), 1.</param>
    /// <param name="window">Sliding window: on layers where <paramref name="sliding"/> is true, position t sees t − window + 1 … t.</param>
    /// <remarks>When the weights hold <c>self_attn.q_norm.weight</c>/<c>k_norm.weight</c> (Qwen3), each head of q and k is
    /// RMS-normalised with them before the rotation.</remarks>
    public static double[][] Logits(ModelConfig c, IReadOnlyDictionary<string, double[]> w, int[] ids,
        Func<int, (double[] InvFreq, double Scale)>? rope = null, int? window = null, Func<int, bool>? sliding = null)
    {
        var (invFreq, ropeScale) = rope?.Invoke(ids.Length)
            ?? (Enumerable.Range(0, c.HeadDim / 2).Select(i => Math.Pow(c.RopeTheta, -2.0 * i / c.HeadDim)).ToArray(), 1.0);
        int T = ids.Length, C = c.HiddenSize, H = c.NumAttentionHeads, Hk = c.NumKeyValueHeads, D = c.HeadDim, F = c.IntermediateSize, V = c.VocabSize;
        var x = new double[T][];
        for (int t = 0; t < T; t++) x[t] = w["model.embed_tokens.weight"].AsSpan(ids[t] * C, C).ToArray();
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var h = x.Select(r => Norm(r, w[p + "input_layernorm.weight"], c.RmsNormEps)).ToArray();
            var q = h.Select(r => Lin(r, w[p + "self_attn.q_proj.weight"], w.GetValueOrDefault(p + "self_attn.q_proj.bias"), H * D)).ToArray();
            var k = h.Select(r => Lin(r, w[p + "self_attn.k_proj.weight"], w.GetValueOrDefault(p + "self_attn.k_proj.bias"), Hk * D)).ToArray();
            var v = h.Select(r => Lin(r, w[p + "self_attn.v_proj.weight"], w.GetValueOrDefault(p + "self_attn.v_proj.bias"), Hk * D)).ToArray();
            if (w.TryGetValue(p + "self_attn.q_norm.weight", out var qn))
                for (int t = 0; t < T; t++) { HeadNorm(q[t], H, D, qn, c.RmsNormEps); HeadNorm(k[t], Hk, D, w[p + "self_attn.k_norm.weight"], c.RmsNormEps); }
            for (int t = 0; t < T; t++) { Rope(q[t], H, D, t, invFreq, ropeScale); Rope(k[t], Hk, D, t, invFreq, ropeScale); }
            int first(int t) => window is { } win && (sliding?.Invoke(l) ?? true) ? Math.Max(0, t - win + 1) : 0;
            var att = new double[T][];
            for (int t = 0; t < T; t++)
            {
                att[t] = new double[H * D];
                for (int hh = 0; hh < H; hh++)
                {
                    int kh = hh / (H / Hk);
                    var scores = Enumerable.Repeat(double.NegativeInfinity, t + 1).ToArray();
                    for (int s = first(t); s <= t; s++)
                    {
                        double dot = 0;
                        for (int d = 0; d < D; d++) dot += q[t][hh * D + d] * k[s][kh * D + d];
                        scores[s] = dot / Math.Sqrt(D);
                    }
                    double max = scores.Max(), sum = scores.Sum(z => Math.Exp(z - max));
                    for (int s = first(t); s <= t; s++)
                    {
                        double a = Math.Exp(scores[s] - max) / sum;
                        for (int d = 0; d < D; d++) att[t][hh * D + d] += a * v[s][kh * D + d];
                    }
                }
            }
            for (int t = 0; t < T; t++)
            {
                var o = Lin(att[t], w[p + "self_attn.o_proj.weight"], w.GetValueOrDefault(p + "self_attn.o_proj.bias"), C);
                for (int i = 0; i < C; i++) x[t][i] += o[i];
                var n2 = Norm(x[t], w[p + "post_attention_layernorm.weight"], c.RmsNormEps);
                var g = Lin(n2, w[p + "mlp.gate_proj.weight"], null, F);
                var u = Lin(n2, w[p + "mlp.up_proj.weight"], null, F);
                var act = g.Select((z, i) => z / (1 + Math.Exp(-z)) * u[i]).ToArray();
                var down = Lin(act, w[p + "mlp.down_proj.weight"], null, C);
                for (int i = 0; i < C; i++) x[t][i] += down[i];
            }
        }
        var head = c.TieWordEmbeddings ? w["model.embed_tokens.weight"] : w["lm_head.weight"];
        return x.Select(r => Lin(Norm(r, w["model.norm.weight"], c.RmsNormEps), head, null, V)).ToArray();
    }

    static double[] Norm(double[] x, double[] weight, double eps)
    {
        double ms = x.Sum(z => z * z) / x.Length;
        double inv = 1.0 / Math.Sqrt(ms + eps);
        return x.Select((z, i) => z * inv * weight[i]).ToArray();
    }

    // y = W x + b with W stored row-major (out, in), as torch's Linear.
    static double[] Lin(double[] x, double[] weight, double[]? bias, int outDim)
    {
        int inDim = x.Length;
        var y = new double[outDim];
        for (int o = 0; o < outDim; o++)
        {
            double s = bias?[o] ?? 0;
            for (int i = 0; i < inDim; i++) s += weight[o * inDim + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    // Rotate pairs (i, i + D/2) of each head by angle pos · invFreq[i], the result times scale (yarn's attention factor).
    static void Rope(double[] x, int heads, int D, int pos, double[] invFreq, double scale)
    {
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < D / 2; i++)
            {
                double ang = pos * invFreq[i];
                double a = x[h * D + i], b = x[h * D + i + D / 2];
                x[h * D + i] = scale * (a * Math.Cos(ang) - b * Math.Sin(ang));
                x[h * D + i + D / 2] = scale * (b * Math.Cos(ang) + a * Math.Sin(ang));
            }
    }

    // RMSNorm of each D-wide head in place.
    static void HeadNorm(double[] x, int heads, int D, double[] weight, double eps)
    {
        for (int h = 0; h < heads; h++)
        {
            var n = Norm(x.AsSpan(h * D, D).ToArray(), weight, eps);
            n.CopyTo(x, h * D);
        }
    }
}
