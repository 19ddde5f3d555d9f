using System.Text.Json;
using System.Text.Json.Nodes;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Rewards;

/// <summary>
/// An implicit PRM (Yuan et al. 2024, "Free Process Rewards without Process Labels"): a policy π_θ trained on outcome
/// labels with reward β·log π_θ/π_ref, whose step rewards are differences of prefix log-ratios,
/// r_t = β·Σ_{tokens of step t} log π_θ/π_ref (<see cref="StepRewards"/>), computed from one
/// teacher-forced pass of each model per batch. Steps are tokenised as <see cref="StepEncoding"/> does, without EOS, so
/// Σ_t r_t is the outcome reward of the steps' text (<see cref="OutcomeRewards"/>). The folder written by
/// the implicit-PRM trainer (<c>kind: implicit_prm</c>) holds the policy, <c>reference/</c> and <c>implicit_prm.json</c> (β, step splitter).
/// </summary>
public sealed class ImplicitPrm : IStepScorer, IDisposable
{
    /// <summary>The marker file of an implicit-PRM folder.</summary>
    public const string MarkerFile = "implicit_prm.json";
    /// <summary>The reference model's subfolder.</summary>
    public const string ReferenceFolder = "reference";

    readonly CausalLM _policy, _reference;
    readonly ITokenizer _tokenizer;
    readonly bool _owns;

    /// <inheritdoc />
    public string Name { get; }
    /// <summary>β of r = β log π_θ/π_ref.</summary>
    public double Beta { get; }
    /// <summary>The step rule recorded with the model.</summary>
    public StepSplitter Splitter { get; }
    /// <summary>Solutions per forward pass.</summary>
    public int MicroBatch { get; }

    /// <summary>Wraps models in memory (not disposed by this object).</summary>
    public ImplicitPrm(CausalLM policy, CausalLM reference, ITokenizer tokenizer, double beta, StepSplitter splitter, string name = "implicit_prm", int microBatch = 16)
    {
        if (!(beta > 0)) throw new ArgumentException($"beta must be positive, got {beta}");
        if (microBatch <= 0) throw new ArgumentException($"microBatch must be positive, got {microBatch}");
        (_policy, _reference, _tokenizer, Beta, Splitter, Name, MicroBatch) = (policy, reference, tokenizer, beta, splitter, name, microBatch);
    }

    /// <summary>Loads a folder written by the implicit-PRM trainer (<c>kind: implicit_prm</c>); throws <see cref="CheckpointException"/> naming what is missing.</summary>
    public static ImplicitPrm Load(string directory, string? name = null, int microBatch = 16)
    {
        var marker = Path.Combine(directory, MarkerFile);
        if (!File.Exists(marker)) throw new CheckpointException($"{directory}: no {MarkerFile}; not an implicit-PRM folder (train one with a kind: implicit_prm recipe)");
        double beta; string spec; string refName;
        try
        {
            var o = JsonNode.Parse(File.ReadAllText(marker)) as JsonObject ?? throw new CheckpointException($"{marker}: expected a JSON object");
            if (o["kind"]?.GetValue<string>() != "implicit_prm") throw new CheckpointException($"{marker}: 'kind' must be \"implicit_prm\"");
            beta = o["beta"]?.GetValue<double>() ?? throw new CheckpointException($"{marker}: 'beta' is missing");
            spec = o["step_splitter"]?.GetValue<string>() ?? throw new CheckpointException($"{marker}: 'step_splitter' is missing");
            refName = o["reference"]?.GetValue<string>() ?? ReferenceFolder;
            if (refName.Contains("..", StringComparison.Ordinal) || Path.IsPathRooted(refName)) throw new CheckpointException($"{marker}: 'reference' must be a subfolder name");
            if (!(beta > 0)) throw new CheckpointException($"{marker}: 'beta' must be positive");
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            throw new CheckpointException($"{marker}: {e.Message} (expected {{\"kind\": \"implicit_prm\", \"beta\": number, \"step_splitter\": string, \"reference\": \"reference\"}})");
        }
        StepSplitter splitter;
        try { splitter = StepSplitter.Parse(spec); }
        catch (ArgumentException e) { throw new CheckpointException($"{marker}: 'step_splitter': {e.Message}"); }
        var refDir = Path.Combine(directory, refName);
        if (!Directory.Exists(refDir)) throw new CheckpointException($"{directory}: no {refName}/ (the reference model)");
        var policy = HfCheckpoint.Load(directory, requireTokenizer: true);
        var reference = HfCheckpoint.Load(refDir);
        policy.Model.eval();
        reference.Model.eval();
        return new ImplicitPrm(policy.Model, reference.Model, policy.Tokenizer!, beta, splitter, string.IsNullOrEmpty(name) ? "implicit_prm" : name, microBatch, owns: true);
    }

    ImplicitPrm(CausalLM policy, CausalLM reference, ITokenizer tokenizer, double beta, StepSplitter splitter, string name, int microBatch, bool owns)
        : this(policy, reference, tokenizer, beta, splitter, name, microBatch) => _owns = owns;

    /// <inheritdoc />
    /// <remarks>Empty steps (a search step that ended at once) are not encoded: the prefix is unchanged, so their step reward
    /// is 0 (<see cref="StepScores.SkippingEmpty"/>).</remarks>
    public double[][] ScoreSteps(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items) => StepScores.SkippingEmpty(items, ScoreNonEmpty, empty: 0);

    double[][] ScoreNonEmpty(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items)
    {
        var result = new double[items.Count][];
        for (int i = 0; i < items.Count; i++) result[i] = [];
        var nonEmpty = Enumerable.Range(0, items.Count).Where(i => items[i].Steps.Count > 0).ToList();
        int padId = _tokenizer.PadTokenId ?? 0;
        using var _ = no_grad();
        for (int start = 0; start < nonEmpty.Count; start += MicroBatch)
        {
            using var scope = NewDisposeScope();
            var idx = nonEmpty.Skip(start).Take(MicroBatch).ToList();
            var enc = idx.Select(i => StepEncoding.Encode(_tokenizer, items[i].Prompt, items[i].Steps)).ToList();
            var (sb, _, completionCols, mask) = StepEncoding.Build(enc, padId);
            var ratio = Scoring.CompletionLogProbs(_policy, sb) - Scoring.CompletionLogProbs(_reference, sb);   // (N, A), 0 on padding
            var rows = StepEncoding.Rows(StepRewards(ratio, completionCols, mask, Beta), enc);
            for (int k = 0; k < idx.Count; k++) result[idx[k]] = rows[k];
        }
        return result;
    }

    /// <summary>The outcome rewards β·log π_θ(y)/π_ref(y) of each item's steps (summed over all their tokens; 0 for no steps).</summary>
    public double[] OutcomeRewards(IReadOnlyList<(string Prompt, IReadOnlyList<string> Steps)> items) =>
        ScoreSteps(items).Select(s => s.Sum()).ToArray();

    /// <summary>This implicit PRM as an outcome reward (default: the sum of step rewards, i.e. the outcome log-ratio).</summary>
    public StepScorerReward AsReward(StepAggregation how = StepAggregation.Sum) => new(this, Splitter, how);

    /// <summary>Writes <c>implicit_prm.json</c> into a model folder.</summary>
    public static void WriteMarker(string directory, double beta, string stepSplitter, string loss) =>
        AtomicFile.WriteAllText(Path.Combine(directory, MarkerFile), new JsonObject
        {
            ["kind"] = "implicit_prm", ["beta"] = beta, ["step_splitter"] = stepSplitter, ["loss"] = loss, ["reference"] = ReferenceFolder,
        }.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_owns) return;
        _policy.Dispose();
        _reference.Dispose();
    }

    /// <summary>
    /// Step rewards of an implicit PRM (Yuan et al. 2024): q_t = β Σ_{i ≤ end_t} log π_θ(y_i|y_&lt;i)/π_ref(y_i|y_&lt;i),
    /// r_t = q_t − q_{t−1} (q_0 = 0), read from one teacher-forced pass: a cumulative sum of per-token log-ratios gathered
    /// at each step's last token. Σ_t r_t = q_T, the outcome reward through the last step.
    /// </summary>
    /// <param name="tokenLogRatios">(N, A) log π_θ − log π_ref per completion token, 0 on padding.</param>
    /// <param name="stepEnds">(N, S) int64: the completion column of each step's last token (any valid column on padding).</param>
    /// <param name="stepMask">(N, S) 1 for real steps.</param>
    /// <param name="beta">β &gt; 0.</param>
    /// <returns>(N, S) step rewards, 0 on padded steps.</returns>
    public static Tensor StepRewards(Tensor tokenLogRatios, Tensor stepEnds, Tensor stepMask, double beta)
    {
        if (!(beta > 0) || double.IsInfinity(beta)) throw new ArgumentOutOfRangeException(nameof(beta), beta, "beta must be positive and finite");
        if (!stepEnds.shape.SequenceEqual(stepMask.shape))
            throw new ArgumentException($"stepMask has shape [{string.Join(",", stepMask.shape)}], expected [{string.Join(",", stepEnds.shape)}]");
        using var scope = NewDisposeScope();
        var q = beta * tokenLogRatios.to(ScalarType.Float64).cumsum(1).gather(1, stepEnds);   // (N, S) prefix rewards
        var before = cat([zeros(q.shape[0], 1, dtype: q.dtype), q.narrow(1, 0, q.shape[1] - 1)], 1);
        return ((q - before) * stepMask.to(q.dtype)).MoveToOuterDisposeScope();
    }
}
