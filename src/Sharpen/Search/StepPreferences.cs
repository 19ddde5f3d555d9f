using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Search;

/// <summary>A step-level preference pair from a search tree: after <paramref name="Prefix"/> (the steps so far), the sibling
/// step <paramref name="Chosen"/> had the higher value.</summary>
/// <param name="Parent">Trace id of the node both steps extend (−1: the root).</param>
/// <param name="Prefix">The text of the path down to that node (empty under the root).</param>
/// <param name="Chosen">The better sibling's step text.</param>
/// <param name="Rejected">The worse sibling's step text.</param>
/// <param name="ChosenValue">The better sibling's value.</param>
/// <param name="RejectedValue">The worse sibling's value.</param>
public sealed record StepPair(int Parent, string Prefix, string Chosen, string Rejected, double ChosenValue, double RejectedValue);

/// <summary>
/// Step-level preferences from search trees, as in step-level Q-value models (Zhai et al. 2024, arXiv:2409.09345),
/// TP-LLaMA (Chen et al. 2024) and Iter-RFT: sibling steps of an MCTS tree whose values differ become
/// step-level preference pairs (prompt + prefix, better step, worse step); DPO on them ("step-DPO") turns the policy into a
/// Q-value model whose implicit Q(s, a) = β·log π_θ(a|s)/π_ref(a|s) ranks candidate actions, and acting takes arg-max Q.
/// </summary>
public static class StepPreferences
{
    /// <summary>
    /// Every pair of siblings (same parent) whose values differ by more than <paramref name="minMargin"/>, the higher-valued
    /// one chosen, in trace order of (parent, chosen, rejected). Siblings with the same text and nodes with NaN value are
    /// skipped. <paramref name="values"/>[i] is node i's value (e.g. <see cref="SearchNode.Value"/>, MCTS's mean backed-up
    /// value, or verified value targets). Nodes must come parents first with Id = position, as <see cref="MctsSearch"/> writes them.
    /// </summary>
    public static List<StepPair> SiblingPairs(IReadOnlyList<SearchNode> trace, IReadOnlyList<double> values, double minMargin = 0)
    {
        ArgumentNullException.ThrowIfNull(trace);
        ArgumentNullException.ThrowIfNull(values);
        if (values.Count != trace.Count) throw new ArgumentException($"{values.Count} values for {trace.Count} nodes", nameof(values));
        if (!(minMargin >= 0)) throw new ArgumentOutOfRangeException(nameof(minMargin), minMargin, "minMargin must be ≥ 0.");
        var prefix = new string[trace.Count];
        var children = new SortedDictionary<int, List<int>>();
        for (int i = 0; i < trace.Count; i++)
        {
            var n = trace[i];
            if (n.Id != i || n.Parent >= i) throw new ArgumentException($"trace node {i} has id {n.Id} and parent {n.Parent}; ids must equal positions and parents come first", nameof(trace));
            prefix[i] = (n.Parent < 0 ? "" : prefix[n.Parent]) + n.Text;
            if (!children.TryGetValue(n.Parent, out var list)) children[n.Parent] = list = [];
            list.Add(i);
        }
        var pairs = new List<StepPair>();
        foreach (var (parent, kids) in children)
            foreach (int a in kids)
                foreach (int b in kids)
                {
                    if (a == b || double.IsNaN(values[a]) || double.IsNaN(values[b])) continue;
                    if (!(values[a] - values[b] > minMargin) || trace[a].Text == trace[b].Text) continue;
                    pairs.Add(new StepPair(parent, parent < 0 ? "" : prefix[parent], trace[a].Text, trace[b].Text, values[a], values[b]));
                }
        return pairs;
    }

    /// <summary>The implicit Q-values Q(s, a_k) = β·(log π_θ(a_k|s) − log π_ref(a_k|s)) of K candidate steps (summed log-probs).</summary>
    public static double[] QValues(IReadOnlyList<double> policyLogProbs, IReadOnlyList<double> referenceLogProbs, double beta)
    {
        if (policyLogProbs.Count != referenceLogProbs.Count) throw new ArgumentException("one reference log-prob per candidate is needed.");
        if (!(beta > 0)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be > 0.");
        return [.. policyLogProbs.Select((p, k) => beta * (p - referenceLogProbs[k]))];
    }

    /// <summary>The index of the largest value (ties: the first).</summary>
    public static int ArgMax(IReadOnlyList<double> values)
    {
        if (values.Count == 0) throw new ArgumentException("no candidates.", nameof(values));
        int best = 0;
        for (int k = 1; k < values.Count; k++) if (values[k] > values[best]) best = k;
        return best;
    }

    /// <summary>
    /// Acting with a step-DPO-trained Q-model: scores each candidate step after <paramref name="context"/> (prompt + steps so
    /// far) under the policy and the reference, and returns the arg-max-Q candidate with all Q-values.
    /// </summary>
    public static (int Best, double[] Q) PickByQ(CausalLM policy, CausalLM reference, ITokenizer tokenizer, string context,
        IReadOnlyList<string> candidates, double beta = 0.1)
    {
        ArgumentNullException.ThrowIfNull(candidates);
        if (candidates.Count == 0) throw new ArgumentException("no candidates.", nameof(candidates));
        var prompt = tokenizer.Encode(context).ToArray();
        var prompts = candidates.Select(_ => (IReadOnlyList<int>)prompt).ToList();
        var steps = candidates.Select(c => (IReadOnlyList<int>)tokenizer.Encode(c, addSpecialTokens: false).ToArray()).ToList();
        if (steps.Any(s => s.Count == 0)) throw new ArgumentException("a candidate step encodes to no tokens.", nameof(candidates));
        int pad = tokenizer.PadTokenId ?? 0;
        var lp = Scoring.SummedScores(policy, prompts, steps, pad);
        var lr = Scoring.SummedScores(reference, prompts, steps, pad);
        var q = QValues(lp.Select(x => (double)x).ToList(), lr.Select(x => (double)x).ToList(), beta);
        return (ArgMax(q), q);
    }
}
