using System.Text.Json.Nodes;
using Sharpen.Generation;
using Sharpen.Rewards;
using Sharpen.Search;
using Sharpen.Tasks;

namespace Sharpen.Training.ExpertIteration;

/// <summary>
/// The value-model step of ReST-MCTS*: after iteration k's search, fit a value model (a PRM) to that iteration's value targets.
/// The returned scorer guides the search of iteration k + 1. A PRM trainer plugs in here.
/// </summary>
public interface IValueModelTrainer
{
    /// <summary>Fits a value model to the targets of iteration <paramref name="iteration"/>: <paramref name="valueTargetsPath"/> is
    /// its <c>value_targets.jsonl</c> (step-label rows), <paramref name="iterationDir"/> its folder (a trainer may write there).
    /// Returns the step scorer the next iteration searches with (null: rollouts alone). Must be deterministic: a resumed run
    /// calls it again for the last completed iteration.</summary>
    IStepScorer? Train(int iteration, string valueTargetsPath, string iterationDir);
}

/// <summary>
/// The built-in fallback value model, used when no PRM trainer is configured (<c>value_model: table</c>): a lookup table fitted
/// to the targets, the mean target per exact (prompt, prefix) it saw, and <see cref="Neutral"/> = 0.5 for any other prefix.
/// It generalises to nothing unseen; it only lets the loop run end to end (prefixes seen in iteration k are re-met in k + 1).
/// </summary>
public sealed class PrefixValueTable : IStepScorer
{
    /// <summary>The value of a prefix the table has not seen.</summary>
    public const double Neutral = 0.5;

    readonly Dictionary<(string Prompt, string Prefix), double> _values;

    PrefixValueTable(Dictionary<(string, string), double> values) => _values = values;

    /// <summary>Distinct (prompt, prefix) keys.</summary>
    public int Count => _values.Count;

    /// <inheritdoc />
    public string Name => "prefix_table";

    /// <summary>Mean label per exact (prompt, concatenated steps up to j) over all rows.</summary>
    public static PrefixValueTable Fit(IEnumerable<ValueTargetRow> rows)
    {
        var sums = new Dictionary<(string, string), (double Sum, int N)>();
        foreach (var r in rows)
        {
            var prefix = "";
            for (int j = 0; j < r.Steps.Count; j++)
            {
                prefix += r.Steps[j];
                var key = (r.Prompt, prefix);
                var (s, n) = sums.GetValueOrDefault(key);
                sums[key] = (s + r.Labels[j], n + 1);
            }
        }
        return new PrefixValueTable(sums.ToDictionary(kv => kv.Key, kv => kv.Value.Sum / kv.Value.N));
    }

    /// <inheritdoc />
    public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items) =>
        items.Select(it =>
        {
            var prefix = "";
            return it.Steps.Select(s => { prefix += s; return _values.TryGetValue((it.Prompt, prefix), out var v) ? v : Neutral; }).ToArray();
        }).ToArray();
}

/// <summary>Fits a <see cref="PrefixValueTable"/> to each iteration's targets (the fallback when no PRM trainer is plugged in).</summary>
public sealed class TableValueModelTrainer : IValueModelTrainer
{
    /// <inheritdoc />
    public IStepScorer? Train(int iteration, string valueTargetsPath, string iterationDir) => PrefixValueTable.Fit(ValueTargetRow.ReadAll(valueTargetsPath));
}

/// <summary>
/// ReST-MCTS*'s sample stage (Zhang et al. 2024). For each training problem, <see cref="MctsSearch"/> runs with the current policy
/// (an <see cref="LmSearchPolicy"/>) and the current value model (none in iteration 1: λ = 1, rollouts scored by the verifier);
/// finished nodes are scored by the task's verifier (the oracle answer the paper assumes for training problems). From the tree:
/// (a) every finished path becomes a candidate with the verifier's verdict, correct ones first (highest mean backed-up value
/// first), so the loop keeps the verified-correct traces as SFT data; (b) every finished path gets per-step value targets
/// (<see cref="MctsValueTargets"/>), written to <c>iter-k/value_targets.jsonl</c>. Then the <see cref="IValueModelTrainer"/> fits
/// the value model the next iteration searches with. Problem i of iteration k is searched with
/// <see cref="SearchStrategies.Derive"/>(iteration seed, i), so runs are reproducible.
/// </summary>
public sealed class MctsExpertSampler(string outDir, IValueModelTrainer? valueTrainer) : IReportingExpertSampler
{
    /// <summary>File name of an iteration's value targets.</summary>
    public const string TargetsFile = "value_targets.jsonl";

    /// <summary>File name of an iteration's step-level preference pairs (<see cref="StepPreferences.SiblingPairs"/> over the
    /// value targets): preference rows <c>{"prompt": problem prompt + prefix, "chosen": step, "rejected": step, "chosen_value",
    /// "rejected_value", "id"}</c>, ready for a <c>preference</c> recipe (step-DPO, <c>recipes/step-dpo.yaml</c>).</summary>
    public const string StepPairsFile = "step_pairs.jsonl";

    int _valueModelIteration;

    /// <summary>Receives progress lines.</summary>
    public Action<string>? Log { get; init; }

    /// <summary>Builds the search policy of an iteration (default: <see cref="LmSearchPolicy"/> over the request's policy,
    /// temperature and max_new_tokens, with the mcts section's splitter and step cap). Tests plug a stub policy in here.</summary>
    public Func<ExpertSampleRequest, ISearchPolicy>? PolicyFactory { get; init; }

    /// <summary>The value model the next search uses (null: rollouts alone).</summary>
    public IStepScorer? ValueModel { get; private set; }

    /// <inheritdoc />
    public ExpertSampleReport? LastReport { get; private set; }

    /// <inheritdoc />
    public IReadOnlyList<IReadOnlyList<ExpertCandidate>> Sample(ExpertSampleRequest request)
    {
        var o = request.Options.Mcts;
        int k = request.Iteration;
        if (k == 1) (ValueModel, _valueModelIteration) = (null, 0);
        else if (valueTrainer is not null && _valueModelIteration != k - 1)
        {
            // A resumed run (or a rerun of an interrupted iteration): refit the value model of the last completed iteration.
            var prevDir = ExpertIterationTrainer.IterationDir(outDir, k - 1);
            ValueModel = valueTrainer.Train(k - 1, Path.Combine(prevDir, TargetsFile), prevDir);
            _valueModelIteration = k - 1;
        }

        var policy = PolicyFactory?.Invoke(request) ?? new LmSearchPolicy(new RolloutEngine(request.Policy, request.Tokenizer), o.Splitter,
            request.Options.Temperature, o.MaxStepTokens, request.Options.MaxNewTokens) { MaxBatchSequences = request.Options.MaxBatchSequences };
        var valueModel = ValueModel;
        var context = new SearchContext(policy, o.ToSearchOptions(valueModel is not null, request.Seed),
            new RewardOutcomeScorer(new TaskReward(request.Task)), valueModel is null ? null : _ => valueModel);
        var search = new MctsSearch();

        var result = new List<IReadOnlyList<ExpertCandidate>>(request.Problems.Count);
        var rows = new List<ValueTargetRow>();
        var stepPairs = new List<string>();
        long tokens = 0;
        int chosenCorrect = 0;
        for (int i = 0; i < request.Problems.Count; i++)
        {
            var p = request.Problems[i];
            var r = search.Search(SearchProblem.From(p, request.Task), context, SearchStrategies.Derive(request.Seed, i));
            tokens += r.Cost.GeneratedTokens;
            var trace = r.Trace;
            var texts = trace.Select(n => n.Terminal ? MctsValueTargets.TextTo(trace, n.Id) : null).ToList();
            var correct = trace.Select((n, j) => n.Terminal && request.Task.Verify(p, texts[j]!).Correct).ToList();
            var values = MctsValueTargets.Values(o.ValueTargets, trace, correct);
            rows.AddRange(MctsValueTargets.Rows(p.Prompt, p.Id, trace, correct, values));
            foreach (var sp in StepPreferences.SiblingPairs(trace, values))
                if (sp.Chosen.Length > 0 && sp.Rejected.Length > 0)
                    stepPairs.Add(new JsonObject
                    {
                        ["prompt"] = p.Prompt + sp.Prefix, ["chosen"] = sp.Chosen, ["rejected"] = sp.Rejected,
                        ["chosen_value"] = Math.Round(sp.ChosenValue, 4), ["rejected_value"] = Math.Round(sp.RejectedValue, 4), ["id"] = p.Id,
                    }.ToJsonString());
            result.Add(MctsValueTargets.RankFinished(trace, correct, values).Select(id => trace[id])
                .Select(n =>
                {
                    var path = MctsValueTargets.PathTo(trace, n.Id);
                    return new ExpertCandidate(texts[n.Id]!, correct[n.Id], path.Sum(j => trace[j].Tokens))
                    {
                        Fields = new Dictionary<string, string> { ["step_values"] = MctsValueTargets.LabelsJson(path.Select(j => values[j])) },
                    };
                }).ToList());
            if (request.Task.Verify(p, r.Completion).Correct) chosenCorrect++;
        }

        var dir = ExpertIterationTrainer.IterationDir(outDir, k);
        Directory.CreateDirectory(dir);
        var targetsPath = Path.Combine(dir, TargetsFile);
        ValueTargetRow.WriteAll(targetsPath, rows);
        File.WriteAllLines(Path.Combine(dir, StepPairsFile), stepPairs);
        Log?.Invoke($"iteration {k}: search with {(valueModel is null ? "rollouts alone" : $"value model '{valueModel.Name}' (λ = {o.Lambda})")}: " +
                    $"{chosenCorrect}/{request.Problems.Count} problems answered correctly, {rows.Count} value-target rows, {tokens} tokens");
        if (valueTrainer is not null)
        {
            ValueModel = valueTrainer.Train(k, targetsPath, dir);
            _valueModelIteration = k;
        }
        LastReport = new ExpertSampleReport(tokens, new JsonObject
        {
            ["search_accuracy"] = request.Problems.Count == 0 ? 0 : (double)chosenCorrect / request.Problems.Count,
            ["value_targets"] = rows.Count, ["value_labels"] = rows.Sum(x => x.Labels.Count), ["step_pairs"] = stepPairs.Count,
            ["value_model"] = valueModel?.Name ?? "rollouts",
        });
        return result;
    }
}
