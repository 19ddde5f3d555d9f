using Sharpen.Algorithms;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Search;
using Sharpen.Data;
using Sharpen.Checkpoints;

namespace Sharpen.Training.ExpertIteration;

/// <summary>
/// One row of <c>value_targets.jsonl</c>, the step-label format <c>{"prompt","steps":[...],"labels":[...]}</c> with soft labels
/// in [0, 1] (label j is the value target of the prefix steps[0..j]), plus the problem's <c>id</c> and whether the path's
/// final answer was verified <c>correct</c>.
/// </summary>
/// <param name="Prompt">The problem's prompt.</param>
/// <param name="Steps">The path's steps (they concatenate to its completion).</param>
/// <param name="Labels">Value target of each prefix, in [0, 1].</param>
/// <param name="Id">The problem's id.</param>
/// <param name="Correct">Whether the verifier accepted the path's completion.</param>
public sealed record ValueTargetRow(string Prompt, IReadOnlyList<string> Steps, IReadOnlyList<double> Labels, string Id, bool Correct)
{
    /// <summary>The JSONL object.</summary>
    public JsonObject ToJson() => new()
    {
        ["prompt"] = Prompt, ["steps"] = new JsonArray(Steps.Select(s => (JsonNode)s).ToArray()),
        ["labels"] = new JsonArray(Labels.Select(l => (JsonNode)l).ToArray()), ["id"] = Id, ["correct"] = Correct,
    };

    /// <summary>Writes rows as JSONL (atomically: a reader never sees half a file).</summary>
    public static void WriteAll(string path, IEnumerable<ValueTargetRow> rows)
    {
        var sb = new StringBuilder();
        foreach (var r in rows) sb.Append(r.ToJson().ToJsonString()).Append('\n');
        AtomicFile.WriteAllText(path, sb.ToString());
    }

    /// <summary>Reads a file written by <see cref="WriteAll"/> with the step-label loader (<see cref="Data.StepLabelledExample.Load"/>,
    /// which keeps <c>id</c> and <c>correct</c> as fields); a bad line throws <see cref="InvalidDataException"/> naming the file,
    /// the line and what was expected.</summary>
    public static List<ValueTargetRow> ReadAll(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: value-target file not found", path);
        try
        {
            return Data.StepLabelledExample.Load(path).Items
                .Select(e => new ValueTargetRow(e.Prompt, e.Steps, e.Labels, e.Fields.GetValueOrDefault("id") ?? "", e.Fields.GetValueOrDefault("correct") == "true"))
                .ToList();
        }
        catch (Data.DatasetFormatException e) { throw new InvalidDataException(e.Message, e); }
    }
}

/// <summary>
/// ReST-MCTS*'s value targets inferred from a search tree whose finished paths were checked by the verifier (the oracle
/// final answer). Per node s_k at depth k: r_k = 0 when some verified-correct finished node lies in its subtree (the step can
/// still lead to the right answer), else 1. The reasoning distance m_k is the fewest steps from s_k to a correct answer: for
/// r_k = 0 the steps down to the nearest correct node; for r_k = 1 (no correct answer below) the distance of its nearest
/// ancestor that still has one below it, the root counting as an ancestor one step above the top-level steps (the rule of the
/// authors' code, THUDM/ReST-MCTS; the paper defines m_k only for partial solutions that can still reach an answer). Then the
/// paper's recurrence gives the value of each prefix. A tree with no correct finished node has no targets at all (the
/// distance to a correct answer is unknown), nor does a node with no finished node under it (the budget ran out there);
/// paths that end unfinished are not written.
/// </summary>
public static class MctsValueTargets
{
    /// <summary>One step of ReST-MCTS*'s value recurrence; see <see cref="ValueTargets.RestMctsStep"/>.</summary>
    public static double Step(double previous, int distance, bool leadsToCorrect) => ValueTargets.RestMctsStep(previous, distance, leadsToCorrect);

    /// <summary>
    /// The value target of every node of <paramref name="trace"/> (NaN for nodes with no finished node in their subtree).
    /// Nodes must come parents first (as <see cref="MctsSearch"/> writes them: Id = index, Parent = −1 under the root);
    /// <paramref name="correct"/>[i] says whether node i is finished and its completion verified correct.
    /// </summary>
    public static double[] NodeValues(IReadOnlyList<SearchNode> trace, IReadOnlyList<bool> correct)
    {
        int n = trace.Count;
        if (correct.Count != n) throw new ArgumentException($"{correct.Count} verdicts for {n} nodes");
        const int Far = int.MaxValue / 2;
        var toCorrect = new int[n];
        var toEnd = new int[n];
        for (int i = 0; i < n; i++)
        {
            if (trace[i].Id != i) throw new ArgumentException($"trace node {i} has id {trace[i].Id}; expected ids equal to positions");
            if (trace[i].Parent >= i) throw new ArgumentException($"trace node {i} has parent {trace[i].Parent}; parents must come first");
            if (correct[i] && !trace[i].Terminal) throw new ArgumentException($"trace node {i} is marked correct but is not finished");
            toCorrect[i] = correct[i] ? 0 : Far;
            toEnd[i] = trace[i].Terminal ? 0 : Far;
        }
        int rootToCorrect = Far;
        for (int i = n - 1; i >= 0; i--)
        {
            int p = trace[i].Parent;
            if (p < 0) { rootToCorrect = Math.Min(rootToCorrect, toCorrect[i] + 1); continue; }
            toCorrect[p] = Math.Min(toCorrect[p], toCorrect[i] + 1);
            toEnd[p] = Math.Min(toEnd[p], toEnd[i] + 1);
        }
        var v = new double[n];
        if (rootToCorrect >= Far) { Array.Fill(v, double.NaN); return v; }
        // m_k of a step with no correct answer below it: the distance of its nearest ancestor that has one.
        var fallback = new int[n];
        for (int i = 0; i < n; i++)
        {
            int p = trace[i].Parent;
            int inherited = p < 0 ? rootToCorrect : fallback[p];
            fallback[i] = toCorrect[i] < Far ? toCorrect[i] : inherited;
        }
        for (int i = 0; i < n; i++)
        {
            if (toEnd[i] >= Far) { v[i] = double.NaN; continue; }
            double previous = trace[i].Parent < 0 ? 0 : v[trace[i].Parent];
            bool good = toCorrect[i] < Far;
            v[i] = Step(previous, good ? toCorrect[i] : fallback[i], good);
        }
        return v;
    }

    /// <summary>
    /// AlphaMath's value targets (Chen et al. 2024, "AlphaMath Almost Zero: Process Supervision without Process",
    /// arXiv:2405.03553 §3): the value of a step is the Q-value MCTS backed up into it, Q(s, a) = W/N over its visits
    /// (<see cref="SearchNode.Value"/>), and a finished node's value is its verified reward (1 correct, 0 wrong: the paper's
    /// ±1 mapped onto the [0, 1] of Sharpen's step labels). Unvisited unfinished nodes get NaN (no estimate). Unlike
    /// <see cref="NodeValues"/> a tree without any correct answer still gives targets (its wrong ends are 0). Nodes must come
    /// parents first, as <see cref="MctsSearch"/> writes them.
    /// </summary>
    public static double[] AlphaMathNodeValues(IReadOnlyList<SearchNode> trace, IReadOnlyList<bool> correct)
    {
        if (correct.Count != trace.Count) throw new ArgumentException($"{correct.Count} verdicts for {trace.Count} nodes");
        var v = new double[trace.Count];
        for (int i = 0; i < trace.Count; i++)
        {
            if (correct[i] && !trace[i].Terminal) throw new ArgumentException($"trace node {i} is marked correct but is not finished");
            v[i] = trace[i].Terminal ? (correct[i] ? 1.0 : 0.0)       // the verified reward of a finished path
                : trace[i].Visits > 0 ? trace[i].Value : double.NaN;   // Q = W/N from the backups
        }
        return v;
    }

    /// <summary>The value targets of a tree by <paramref name="method"/>: <c>rest_mcts</c> (<see cref="NodeValues"/>) or
    /// <c>alphamath</c> (<see cref="AlphaMathNodeValues"/>).</summary>
    public static double[] Values(string method, IReadOnlyList<SearchNode> trace, IReadOnlyList<bool> correct) => method switch
    {
        "rest_mcts" => NodeValues(trace, correct),
        "alphamath" => AlphaMathNodeValues(trace, correct),
        _ => throw new ArgumentException($"value targets '{method}' are not known; expected rest_mcts or alphamath"),
    };

    /// <summary>
    /// The finished nodes in the order their paths are offered as SFT data: verified-correct first, ranked by the mean of the
    /// inferred step values along the path (<paramref name="values"/> from <see cref="NodeValues"/>; k/K on a correct path of
    /// K steps, so shorter correct traces lead), ties and wrong paths in trace order. The paper selects traces with its value
    /// model; ranking by the inferred values is this project's reading.
    /// </summary>
    public static List<int> RankFinished(IReadOnlyList<SearchNode> trace, IReadOnlyList<bool> correct, IReadOnlyList<double> values)
    {
        double Mean(int leaf) => PathTo(trace, leaf).Select(j => values[j]).Where(x => !double.IsNaN(x)).DefaultIfEmpty(0).Average();
        return trace.Where(n => n.Terminal)
            .OrderByDescending(n => correct[n.Id]).ThenByDescending(n => correct[n.Id] ? Mean(n.Id) : 0).ThenBy(n => n.Id)
            .Select(n => n.Id).ToList();
    }

    /// <summary>The node ids from the root's child down to <paramref name="leaf"/>.</summary>
    public static int[] PathTo(IReadOnlyList<SearchNode> trace, int leaf)
    {
        var path = new List<int>();
        for (int i = leaf; i >= 0; i = trace[i].Parent) path.Add(i);
        path.Reverse();
        return [.. path];
    }

    /// <summary>The completion of the path to <paramref name="leaf"/>: its steps concatenated.</summary>
    public static string TextTo(IReadOnlyList<SearchNode> trace, int leaf) => string.Concat(PathTo(trace, leaf).Select(i => trace[i].Text));

    /// <summary>One row per finished node of the tree (in trace order; none when the tree has no correct finished node, or, with
    /// <paramref name="values"/> given, when no node has a target; a path with a node without a target is left out): the
    /// steps of its path and their value targets. An
    /// empty step (a path that ended at once, e.g. an immediate EOS) adds no text, so the prefix it ends is the prefix before
    /// it: it is left out and its target, the better-informed one, replaces that prefix's. Every step of a row therefore has
    /// text, as the step-label format (<see cref="Data.StepLabelledExample"/>) and the PRM trainer require.
    /// <paramref name="values"/>: the tree's <see cref="NodeValues"/> when the caller already has them (computed here otherwise).</summary>
    public static List<ValueTargetRow> Rows(string prompt, string id, IReadOnlyList<SearchNode> trace, IReadOnlyList<bool> correct,
                                            IReadOnlyList<double>? values = null)
    {
        var v = values ?? NodeValues(trace, correct);
        var rows = new List<ValueTargetRow>();
        if (values is null ? !correct.Any(c => c) : v.All(double.IsNaN)) return rows;
        for (int i = 0; i < trace.Count; i++)
        {
            if (!trace[i].Terminal) continue;
            var steps = new List<string>();
            var labels = new List<double>();
            foreach (var j in PathTo(trace, i))
            {
                if (trace[j].Text.Length > 0) { steps.Add(trace[j].Text); labels.Add(v[j]); }
                else if (labels.Count > 0) labels[^1] = v[j];
            }
            if (steps.Count > 0 && !labels.Any(double.IsNaN)) rows.Add(new ValueTargetRow(prompt, steps, labels, id, correct[i]));
        }
        return rows;
    }

    /// <summary>Labels as a compact JSON array (for a kept example's fields).</summary>
    internal static string LabelsJson(IEnumerable<double> labels) =>
        "[" + string.Join(",", labels.Select(l => Math.Round(l, 4).ToString("R", CultureInfo.InvariantCulture))) + "]";
}
