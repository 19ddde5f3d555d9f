using Sharpen.Rewards;
namespace Sharpen.Search;

/// <summary>
/// <c>mcts</c>: Monte Carlo tree search over reasoning steps (after AlphaMath and ReST-MCTS*). One simulation:
/// <list type="number">
/// <item>Selection: from the root, descend to the child maximising PUCT, Q + c·P·√N_parent / (1 + N), or UCT,
/// Q + c·√(ln N_parent / N), skipping closed subtrees (a node is closed when finished or when all its children are).
/// Q = W / N is the mean backed-up value. The prior P of a step is exp(mean token log-probability) of the step under the
/// policy, normalised over its siblings: a length-normalised step probability, so long steps are not penalised for length.</item>
/// <item>Expansion: sample k = <see cref="SearchOptions.Expansions"/> next steps of the leaf in one batched call
/// (identical steps merged).</item>
/// <item>Evaluation of each new child: a finished one gets the outcome score (or its step value with no outcome scorer);
/// others get v = (1 − λ)·step value + λ·outcome score of one rollout to the end (AlphaMath's mixing; λ = 0 means no rollouts).
/// The step value is the step scorer's scores of the prefix aggregated by <see cref="SearchOptions.StepAggregation"/>.</item>
/// <item>Backup: each new child starts with N = 1, W = v; every node on the path gains the children's count and value sum.</item>
/// </list>
/// Stops when the budget cannot pay for one more expansion, the root is closed, or after <see cref="SearchOptions.MctsSimulations"/>.
/// Answer (<see cref="SearchOptions.MctsPick"/>): the finished node of highest value (ties: more visits, then older), or
/// the path of most-visited children.
/// </summary>
public sealed class MctsSearch : ISearchStrategy
{
    /// <inheritdoc />
    public string Name => "mcts";

    sealed class Node
    {
        public int Id, Parent, Depth, Tokens, N;
        public string Text = "", Step = "";
        public IReadOnlyList<string> Steps = [];
        public double LogProb, Prior, W, Score = double.NaN;
        public bool Terminal, Closed;
        public string? Answer;
        public readonly List<Node> Children = [];
        public double Q => N == 0 ? 0 : W / N;
    }

    /// <inheritdoc />
    public SearchResult Search(SearchProblem problem, SearchContext context, long seed)
    {
        var o = context.Options;
        double lambda = o.MctsLambda;
        var stepScorer = lambda < 1 ? SearchStrategies.NeedSteps(context, problem, Name) : null;
        var outcome = lambda > 0 ? SearchStrategies.NeedOutcome(context, Name) : context.Outcome;
        var meter = new SearchMeter(o.Budget);
        var root = new Node { Id = -1, Parent = -1 };
        var nodes = new List<Node>();

        for (int sim = 0; o.MctsSimulations == 0 || sim < o.MctsSimulations; sim++)
        {
            if (root.Closed) break;
            int remaining = meter.RemainingTokens;
            int stepCap = Math.Min(context.Policy.MaxStepTokens, remaining);
            if (stepCap <= 0) break;
            int k = Math.Min(o.Expansions, remaining / stepCap);

            // Selection.
            var path = new List<Node> { root };
            var leaf = root;
            while (leaf.Children.Count > 0)
            {
                Node? best = null;
                double bestScore = double.NegativeInfinity;
                foreach (var c in leaf.Children)
                {
                    if (c.Closed) continue;
                    double s = Select(c, leaf, o);
                    if (best is null || s > bestScore) (best, bestScore) = (c, s);
                }
                leaf = best!;
                path.Add(leaf);
            }

            // Expansion.
            var outs = context.Policy.Sample([new ContinuationRequest(problem.Prompt, leaf.Text, k, OneStep: true, stepCap)],
                SearchStrategies.Derive(seed, sim), meter)[0];
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var fresh = new List<Node>();
            foreach (var c in outs)
            {
                if (c.Text.Length == 0 && !c.Finished) continue;
                if (!seen.Add(c.Text)) continue;
                var text = leaf.Text + c.Text;
                bool finished = SearchStrategies.IsFinished(problem, text, c) || leaf.Depth + 1 >= o.MaxSteps;
                fresh.Add(new Node
                {
                    Id = nodes.Count + fresh.Count, Parent = leaf.Id, Depth = leaf.Depth + 1, Text = text, Step = c.Text,
                    Steps = [.. leaf.Steps, c.Text], Tokens = c.Tokens, LogProb = c.LogProb, Prior = c.MeanTokenProbability,
                    Terminal = finished, Closed = finished, Answer = finished ? problem.ExtractAnswer(text) : null,
                });
            }
            if (fresh.Count == 0) { leaf.Closed = true; CloseUp(path); continue; }
            double priorSum = fresh.Sum(f => f.Prior);
            foreach (var f in fresh) f.Prior = priorSum > 0 ? f.Prior / priorSum : 1.0 / fresh.Count;

            // Evaluation.
            var stepValues = stepScorer is null ? fresh.Select(_ => double.NaN).ToArray()
                : SearchStrategies.PrefixValues(stepScorer, problem, fresh.Select(f => f.Steps).ToList(), o.StepAggregation, meter);
            var terminals = fresh.Where(f => f.Terminal).ToList();
            var terminalScores = outcome is null ? []
                : SearchStrategies.ScoreOutcomes(outcome, problem, terminals.Select(f => (f.Text, 0)).ToList(), meter);
            var rolloutScores = new Dictionary<Node, double>();
            var open = fresh.Where(f => !f.Terminal).ToList();
            if (lambda > 0 && open.Count > 0)
            {
                int cap = Math.Min(context.Policy.MaxTotalTokens, meter.RemainingTokens / open.Count);
                if (cap >= 1)
                {
                    var rolls = context.Policy.Sample(open.Select(f => new ContinuationRequest(problem.Prompt, f.Text, 1, OneStep: false, cap)).ToList(),
                        SearchStrategies.Derive(~seed, sim), meter);
                    var scores = SearchStrategies.ScoreOutcomes(outcome!, problem, open.Select((f, i) => (f.Text + rolls[i][0].Text, 0)).ToList(), meter);
                    for (int i = 0; i < open.Count; i++) rolloutScores[open[i]] = scores[i];
                }
            }
            for (int i = 0; i < fresh.Count; i++)
            {
                var f = fresh[i];
                double v;
                if (f.Terminal)
                {
                    int t = terminals.IndexOf(f);
                    v = outcome is not null ? terminalScores[t] : stepValues[i];
                }
                else if (rolloutScores.TryGetValue(f, out var r))
                    v = stepScorer is null ? r : (1 - lambda) * stepValues[i] + lambda * r;
                else v = stepValues[i];
                if (double.IsNaN(v)) v = 0;
                f.Score = v;
                f.N = 1;
                f.W = v;
                leaf.Children.Add(f);
                nodes.Add(f);
            }

            // Backup.
            double sum = fresh.Sum(f => f.W);
            foreach (var p in path) { p.N += fresh.Count; p.W += sum; }
            if (fresh.All(f => f.Closed)) { leaf.Closed = true; CloseUp(path); }
        }

        Node? chosen = null;
        if (o.MctsPick == "best-terminal")
            foreach (var n in nodes)
                if (n.Terminal && (chosen is null || n.Score > chosen.Score || (n.Score == chosen.Score && n.N > chosen.N))) chosen = n;
        if (chosen is null)
        {
            var n = root;
            while (n.Children.Count > 0)
                n = n.Children.Aggregate((a, b) => b.N > a.N || (b.N == a.N && b.Q > a.Q) ? b : a);
            chosen = n == root ? null : n;
        }
        var trace = nodes.Select(n => new SearchNode(n.Id, n.Parent, n.Step, n.Tokens, n.LogProb, n.Score, n.N, n.Q, n.Terminal, n.Answer)).ToList();
        var completion = chosen?.Text ?? "";
        return new SearchResult(Name, completion, problem.ExtractAnswer(completion), meter.Cost, trace);
    }

    static double Select(Node child, Node parent, SearchOptions o) => o.MctsSelection == "uct"
        ? child.Q + o.MctsC * Math.Sqrt(Math.Log(Math.Max(1, parent.N)) / child.N)
        : child.Q + o.MctsC * child.Prior * Math.Sqrt(parent.N) / (1 + child.N);

    // After a node closes, close each ancestor whose children are all closed.
    static void CloseUp(List<Node> path)
    {
        for (int i = path.Count - 2; i >= 0; i--)
        {
            if (path[i].Children.Count > 0 && path[i].Children.All(c => c.Closed)) path[i].Closed = true;
            else break;
        }
    }
}
