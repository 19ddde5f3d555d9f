using Sharpen.Models;

namespace Sharpen.Tests.Models;

/// <summary>
/// A naive double-precision Gemma / Gemma 2 / Gemma 3 (text) forward pass written from Transformers' modeling files
/// (loops over plain arrays, no torch, no code shared with <see cref="CausalLM"/> or <see cref="ReferenceLlama"/>):
/// embeddings × √hidden_size, RMSNorm × (1 + w), GeGLU with the tanh GELU, Gemma 2/3's four norms per block,
/// scores × query_pre_attn_scalar^(-1/2), attention and final soft-capping, sliding layers (Gemma 2: even layers; Gemma 3:
/// all but every sliding_window_pattern-th) and Gemma 3's q/k norms and local RoPE base.
/// </summary>
static class ReferenceGemma
{
    /// <param name="localTheta">Gemma 3: RoPE base of the sliding layers (null: rope_local_base_freq or 10000).</param>
    /// <param name="softcaps">Override: apply the soft-caps (false: leave them out, to show they matter).</param>
    public static double[][] Logits(ModelConfig c, IReadOnlyDictionary<string, double[]> w, int[] ids, double? localTheta = null, bool softcaps = true)
    {
        string type = c.ModelType;
        bool sandwich = type is "gemma2" or "gemma3_text";
        int T = ids.Length, C = c.HiddenSize, H = c.NumAttentionHeads, Hk = c.NumKeyValueHeads, D = c.HeadDim, F = c.IntermediateSize, V = c.VocabSize;
        double scaling = Math.Pow(c.QueryPreAttnScalar ?? D, -0.5);
        double normalizer = (float)Math.Sqrt(C);                         // torch.tensor(hidden_size ** 0.5, dtype=float32)
        var x = new double[T][];
        for (int t = 0; t < T; t++) x[t] = w["model.embed_tokens.weight"].AsSpan(ids[t] * C, C).ToArray().Select(z => z * normalizer).ToArray();
        for (int l = 0; l < c.NumHiddenLayers; l++)
        {
            string p = $"model.layers.{l}.";
            bool sliding = c.SlidingWindow is not null && (c.LayerTypes is { } lt ? lt[l] == "sliding_attention"
                : type == "gemma2" ? l % 2 == 0 : type == "gemma3_text" && (l + 1) % (c.SlidingWindowPattern ?? 6) != 0);
            double theta = type == "gemma3_text" && sliding ? localTheta ?? c.RopeLocalBaseFreq ?? 10000.0 : c.RopeTheta;
            double linear = type == "gemma3_text" && sliding ? 1.0 : c.RopeScaling is { Type: "linear" } rs ? rs.Factor : 1.0;
            var h = x.Select(r => Norm(r, w[p + "input_layernorm.weight"], c.RmsNormEps)).ToArray();
            var q = h.Select(r => Lin(r, w[p + "self_attn.q_proj.weight"], H * D)).ToArray();
            var k = h.Select(r => Lin(r, w[p + "self_attn.k_proj.weight"], Hk * D)).ToArray();
            var v = h.Select(r => Lin(r, w[p + "self_attn.v_proj.weight"], Hk * D)).ToArray();
            if (type == "gemma3_text")
                for (int t = 0; t < T; t++)
                {
                    for (int hh = 0; hh < H; hh++) Norm(q[t].AsSpan(hh * D, D).ToArray(), w[p + "self_attn.q_norm.weight"], c.RmsNormEps).CopyTo(q[t], hh * D);
                    for (int hh = 0; hh < Hk; hh++) Norm(k[t].AsSpan(hh * D, D).ToArray(), w[p + "self_attn.k_norm.weight"], c.RmsNormEps).CopyTo(k[t], hh * D);
                }
            for (int t = 0; t < T; t++) { Rope(q[t], H, D, t, theta, linear); Rope(k[t], Hk, D, t, theta, linear); }
            var att = new double[T][];
            for (int t = 0; t < T; t++)
            {
                att[t] = new double[H * D];
                int first = sliding ? Math.Max(0, t - c.SlidingWindow!.Value + 1) : 0;   // keys s with t − s < sliding_window
                for (int hh = 0; hh < H; hh++)
                {
                    int kh = hh / (H / Hk);
                    var scores = new double[t + 1];
                    for (int s = first; s <= t; s++)
                    {
                        double dot = 0;
                        for (int d = 0; d < D; d++) dot += q[t][hh * D + d] * k[s][kh * D + d];
                        scores[s] = dot * scaling;
                        if (softcaps && c.AttnLogitSoftcapping is { } cap) scores[s] = Math.Tanh(scores[s] / cap) * cap;
                    }
                    double max = double.NegativeInfinity;
                    for (int s = first; s <= t; s++) max = Math.Max(max, scores[s]);
                    double sum = 0;
                    for (int s = first; s <= t; s++) sum += Math.Exp(scores[s] - max);
                    for (int s = first; s <= t; s++)
                    {
                        double a = Math.Exp(scores[s] - max) / sum;
                        for (int d = 0; d < D; d++) att[t][hh * D + d] += a * v[s][kh * D + d];
                    }
                }
            }
            for (int t = 0; t < T; t++)
            {
                var o = Lin(att[t], w[p + "self_attn.o_proj.weight"], C);
                if (sandwich) o = Norm(o, w[p + "post_attention_layernorm.weight"], c.RmsNormEps);
                for (int i = 0; i < C; i++) x[t][i] += o[i];
                var n2 = Norm(x[t], w[p + (sandwich ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight")], c.RmsNormEps);
                var g = Lin(n2, w[p + "mlp.gate_proj.weight"], F);
                var u = Lin(n2, w[p + "mlp.up_proj.weight"], F);
                var act = g.Select((z, i) => 0.5 * z * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (z + 0.044715 * z * z * z))) * u[i]).ToArray();
                var down = Lin(act, w[p + "mlp.down_proj.weight"], C);
                if (sandwich) down = Norm(down, w[p + "post_feedforward_layernorm.weight"], c.RmsNormEps);
                for (int i = 0; i < C; i++) x[t][i] += down[i];
            }
        }
        var head = c.TieWordEmbeddings ? w["model.embed_tokens.weight"] : w["lm_head.weight"];
        return x.Select(r =>
        {
            var logits = Lin(Norm(r, w["model.norm.weight"], c.RmsNormEps), head, V);
            return softcaps && c.FinalLogitSoftcapping is { } cap ? logits.Select(z => Math.Tanh(z / cap) * cap).ToArray() : logits;
        }).ToArray();
    }

    // Gemma's RMSNorm: x / √(mean(x²) + eps) · (1 + w).
    static double[] Norm(double[] x, double[] weight, double eps)
    {
        double inv = 1.0 / Math.Sqrt(x.Sum(z => z * z) / x.Length + eps);
        return x.Select((z, i) => z * inv * (1.0 + weight[i])).ToArray();
    }

    static double[] Lin(double[] x, double[] weight, int outDim)
    {
        var y = new double[outDim];
        for (int o = 0; o < outDim; o++)
        {
            double s = 0;
            for (int i = 0; i < x.Length; i++) s += weight[o * x.Length + i] * x[i];
            y[o] = s;
        }
        return y;
    }

    // rotate_half RoPE with base theta, positions divided by the linear factor.
    static void Rope(double[] x, int heads, int D, int pos, double theta, double linear)
    {
        for (int h = 0; h < heads; h++)
            for (int i = 0; i < D / 2; i++)
            {
                double ang = pos / linear * Math.Pow(theta, -2.0 * i / D);
                double a = x[h * D + i], b = x[h * D + i + D / 2];
                x[h * D + i] = a * Math.Cos(ang) - b * Math.Sin(ang);
                x[h * D + i + D / 2] = b * Math.Cos(ang) + a * Math.Sin(ang);
            }
    }
}
