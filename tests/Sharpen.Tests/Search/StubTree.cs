using Sharpen.Rewards;
using Sharpen.Search;

namespace Sharpen.Tests.Search;

/// <summary>
/// A deterministic stub policy over a hand-written tree of steps. At each prefix the next step is drawn by systematic
/// sampling: for n samples, sample j takes the child whose cumulative-probability interval holds (j + U)/n, U drawn once
/// per call from a seeded RNG. So a child of probability p gets ⌊n·p⌋ or ⌈n·p⌉ of the n samples (exactly n·p when that is
/// an integer), which lets the tests count samples by hand. Samples to the end are drawn level by level the same way
/// (the samples that went to one child are split among its children). One token = one character; a prefix with no entry
/// in the tree is finished. Temperature 0 takes the most probable child.
/// </summary>
sealed class StubPolicy(Dictionary<string, (string Step, double P)[]> tree, int maxStep = 8, int maxTotal = 20) : ISearchPolicy
{
    public int MaxStepTokens => maxStep;
    public int MaxTotalTokens => maxTotal;
    public int Calls { get; private set; }

    public IReadOnlyList<IReadOnlyList<Continuation>> Sample(IReadOnlyList<ContinuationRequest> requests, long seed, SearchMeter meter)
    {
        Calls++;
        var rng = new Random((int)(seed % int.MaxValue));
        var result = new List<IReadOnlyList<Continuation>>();
        foreach (var q in requests)
        {
            var outs = Draw(q.Prefix, q.Count, q.OneStep, Math.Min(q.MaxTokens, (q.OneStep ? maxStep : maxTotal)), q.Temperature == 0, rng)
                .Select(x => new Continuation(x.Text, x.Text.Length, x.Text.Length, x.LogP, x.Finished)).ToList();
            Assert.True(outs.All(o => o.Tokens <= q.MaxTokens));
            result.Add(outs);
        }
        var all = result.SelectMany(x => x).ToList();
        meter.AddGeneration(all.Sum(c => c.Tokens), all.Count == 0 ? 0 : all.Max(c => c.Tokens));
        return result;
    }

    List<(string Text, double LogP, bool Finished)> Draw(string prefix, int n, bool oneStep, int maxTokens, bool greedy, Random rng)
    {
        var children = tree[prefix];
        var pick = new int[n];
        if (greedy) Array.Fill(pick, Array.IndexOf(children, children.MaxBy(c => c.P)));
        else
        {
            double u0 = rng.NextDouble();
            for (int j = 0; j < n; j++)
            {
                double u = (j + u0) / n, cum = 0;
                pick[j] = children.Length - 1;
                for (int c = 0; c < children.Length; c++) { cum += children[c].P; if (u < cum) { pick[j] = c; break; } }
            }
        }
        var outs = new List<(string, double, bool)>();
        for (int c = 0; c < children.Length; c++)
        {
            int m = pick.Count(x => x == c);
            if (m == 0) continue;
            var (step, p) = children[c];
            if (step.Length > maxTokens) { for (int i = 0; i < m; i++) outs.Add((step[..maxTokens], Math.Log(p), false)); continue; }
            bool leaf = !tree.ContainsKey(prefix + step);
            if (oneStep || leaf) { for (int i = 0; i < m; i++) outs.Add((step, Math.Log(p), leaf)); continue; }
            foreach (var (t, lp, f) in Draw(prefix + step, m, false, maxTokens - step.Length, greedy, rng)) outs.Add((step + t, Math.Log(p) + lp, f));
        }
        return outs;
    }
}

/// <summary>Scores a prefix (the concatenated steps up to each step) from a table; 0 when absent.</summary>
sealed class TableStepScorer(Dictionary<string, double> table) : IStepScorer
{
    public string Name => "table";
    public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items) =>
        items.Select(it =>
        {
            var prefix = "";
            return it.Steps.Select(s => { prefix += s; return table.GetValueOrDefault(prefix); }).ToArray();
        }).ToArray();
}

/// <summary>Scores a completion by its final answer from a table; 0 when absent.</summary>
sealed class AnswerScorer(Dictionary<string, double> byAnswer) : IOutcomeScorer
{
    public string Name => "answers";
    public double[] Score(SearchProblem problem, IReadOnlyList<(string Completion, int Tokens)> completions) =>
        completions.Select(c => problem.ExtractAnswer(c.Completion) is { } a ? byAnswer.GetValueOrDefault(a) : 0).ToArray();
}
