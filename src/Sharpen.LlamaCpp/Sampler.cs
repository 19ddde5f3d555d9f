using Sharpen.Generation;

namespace Sharpen.LlamaCpp;

/// <summary>Sampling on one row of raw logits with the torch engine's rules (temperature, then top-k, then top-p).</summary>
internal static class Sampler
{
    /// <summary>Greedy: the first largest logit. Otherwise one draw from softmax(logits / T) restricted to the top-k and then
    /// to the smallest set of tokens whose probability reaches top-p (a token stays when the mass strictly before it is below P).</summary>
    public static int Sample(float[] logits, SamplingOptions o, Random rng)
    {
        if (o.Greedy) return ArgMax(logits);
        int v = logits.Length;
        var scaled = new double[v];
        for (int i = 0; i < v; i++) scaled[i] = logits[i] / o.Temperature;
        if (o.TopK > 0 && o.TopK < v)
        {
            var sorted = (double[])scaled.Clone();
            Array.Sort(sorted);
            double kth = sorted[v - o.TopK];
            for (int i = 0; i < v; i++) if (scaled[i] < kth) scaled[i] = double.NegativeInfinity;
        }
        if (o.TopP < 1.0)
        {
            var order = Enumerable.Range(0, v).ToArray();
            Array.Sort(order, (a, b) => scaled[b].CompareTo(scaled[a]));
            var probs = Softmax(scaled);
            double before = 0;
            foreach (var i in order)
            {
                double p = probs[i];
                if (before >= o.TopP) scaled[i] = double.NegativeInfinity;
                before += p;
            }
        }
        var final = Softmax(scaled);
        double u = rng.NextDouble(), acc = 0;
        int last = 0;
        for (int i = 0; i < v; i++)
        {
            if (final[i] <= 0) continue;
            acc += final[i];
            last = i;
            if (u < acc) return i;
        }
        return last;
    }

    /// <summary>log softmax(logits)[token], computed in double.</summary>
    public static float LogSoftmaxAt(float[] logits, int token)
    {
        double max = double.NegativeInfinity;
        foreach (var l in logits) if (l > max) max = l;
        double sum = 0;
        foreach (var l in logits) sum += Math.Exp(l - max);
        return (float)(logits[token] - max - Math.Log(sum));
    }

    static int ArgMax(float[] x)
    {
        int best = 0;
        for (int i = 1; i < x.Length; i++) if (x[i] > x[best]) best = i;
        return best;
    }

    static double[] Softmax(double[] x)
    {
        double max = double.NegativeInfinity;
        foreach (var v in x) if (v > max) max = v;
        var p = new double[x.Length];
        double sum = 0;
        for (int i = 0; i < x.Length; i++) { p[i] = double.IsNegativeInfinity(x[i]) ? 0 : Math.Exp(x[i] - max); sum += p[i]; }
        for (int i = 0; i < x.Length; i++) p[i] /= sum;
        return p;
    }
}
