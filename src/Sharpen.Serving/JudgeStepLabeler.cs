using System.Globalization;
using System.Text.Json;
using Sharpen.Data;
using Sharpen.Rewards;

namespace Sharpen.Serving;

/// <summary>How <see cref="JudgeStepLabeler"/> asks the judge for step labels.</summary>
public enum JudgeLabelMethod
{
    /// <summary>GenPRM (arXiv:2504.00891): one generative verification per step, the judge's reasoning kept as the step's
    /// rationale; several votes per step make the label the share judged correct (its test-time scaling).</summary>
    GenPrm,
    /// <summary>AURORA (arXiv:2502.11520): an ensemble of differently phrased prompts labels the whole solution, the
    /// label of a step is the ensemble's mean vote; reverse verification checks the final answer against the reference.</summary>
    Aurora,
}

/// <summary>One prompt of AURORA's ensemble.</summary>
public enum JudgePromptStyle
{
    /// <summary>All steps at once, one sign per step (<see cref="JudgeProtocol.StepLabelPrompt"/>).</summary>
    SignList,
    /// <summary>The index of the first wrong step (<see cref="JudgeProtocol.FirstErrorPrompt"/>).</summary>
    FirstError,
    /// <summary>One verification per step (<see cref="JudgeProtocol.StepVerifyPrompt"/>).</summary>
    PerStep,
}

/// <summary>Options of <see cref="JudgeStepLabeler"/>.</summary>
public sealed record JudgeStepLabelOptions
{
    /// <summary>GenPRM or AURORA. Default GenPRM.</summary>
    public JudgeLabelMethod Method { get; init; } = JudgeLabelMethod.GenPrm;
    /// <summary>GenPRM: verifications asked per step; the label is the share of parsed ones that say correct (1: a hard
    /// label). Use a sampling temperature above 0 in the judge's options for votes to differ.</summary>
    public int Votes { get; init; } = 1;
    /// <summary>GenPRM: after the first step whose label is below ½, later steps are labelled 0 without asking (a solution
    /// stays wrong after its first error). Default true.</summary>
    public bool StopAtFirstError { get; init; } = true;
    /// <summary>AURORA: the prompts of the ensemble (at least one, no repeats).</summary>
    public IReadOnlyList<JudgePromptStyle> Ensemble { get; init; } = [JudgePromptStyle.SignList, JudgePromptStyle.FirstError, JudgePromptStyle.PerStep];
    /// <summary>AURORA: with a reference answer, ask whether the final answer agrees with it; when it does not, the last
    /// step is labelled 0 whatever the ensemble said. Default true.</summary>
    public bool ReverseVerification { get; init; } = true;

    /// <summary>Throws <see cref="ArgumentException"/> naming the bad option.</summary>
    public JudgeStepLabelOptions Validate()
    {
        if (Votes < 1) throw new ArgumentException($"votes must be ≥ 1, got {Votes}");
        if (Ensemble is null || Ensemble.Count == 0) throw new ArgumentException("ensemble needs at least one prompt style (sign_list, first_error, per_step)");
        if (Ensemble.Distinct().Count() != Ensemble.Count) throw new ArgumentException($"ensemble repeats a prompt style: {string.Join(", ", Ensemble)}");
        return this;
    }
}

/// <summary>
/// LLM-judge step labels as PRM training data: a <see cref="ChatJudge"/> labels each step of a solution and the result is a
/// <see cref="StepLabelledExample"/> (labels in [0, 1], the repo's step-label JSONL), ready for <c>kind: prm</c> or for
/// PRM-Lessons' <see cref="ConsensusFilter"/> against Monte-Carlo labels.
/// <para><b>GenPRM</b> (Zhao et al. 2025, arXiv:2504.00891): each step is verified generatively — the judge sees the earlier
/// steps and the step, reasons, and ends with a judgement; the label is the share of <see cref="JudgeStepLabelOptions.Votes"/>
/// verifications that say correct, and the first verification's text is the step's rationale (field <c>rationales</c>,
/// a JSON list, one per judged step). Departures: GenPRM executes the Python code in its rationales and trains its labels by
/// Relative Progress Estimation from Monte-Carlo roll-outs; here the judge's own reasoning stands alone (no code is run) and
/// MC labels come from <c>sharpen data label-steps</c>, to be combined by the consensus filter.</para>
/// <para><b>AURORA</b> (Tan et al. 2025, arXiv:2502.11520): several prompts (<see cref="JudgeStepLabelOptions.Ensemble"/>)
/// label the same solution and a step's label is the mean of their 0/1 votes (a prompt whose reply did not parse is left
/// out; field <c>ensemble</c> counts those that did). Reverse verification, as we read it: the reference answer goes into
/// every prompt, and the judge is asked whether the final answer agrees with the reference; when it does not, the last step
/// is labelled 0 (a wrong outcome has a wrong step; field <c>matches_reference</c>).</para>
/// A solution none of whose replies parse gives no row (counted as failed), never guessed labels.
/// </summary>
public sealed class JudgeStepLabeler(ChatJudge judge, JudgeStepLabelOptions? options = null)
{
    readonly ChatJudge _judge = judge ?? throw new ArgumentNullException(nameof(judge));

    /// <summary>The options it was made with.</summary>
    public JudgeStepLabelOptions Options { get; } = (options ?? new()).Validate();

    /// <summary>The labelled row of one solution, or null when the judge's replies did not give every step a label.</summary>
    /// <param name="prompt">The problem.</param>
    /// <param name="steps">The solution's steps (at least one).</param>
    /// <param name="reference">A reference (gold) answer, or null.</param>
    /// <param name="ct">Cancels the requests.</param>
    public Task<StepLabelledExample?> LabelAsync(string prompt, IReadOnlyList<string> steps, string? reference = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(steps);
        if (steps.Count == 0) throw new ArgumentException("a solution needs at least one step", nameof(steps));
        return Options.Method == JudgeLabelMethod.GenPrm ? GenPrmAsync(prompt, steps, reference, ct) : AuroraAsync(prompt, steps, reference, ct);
    }

    /// <summary>Labels every solution (one at a time); the rows that got labels, and how many did not.</summary>
    public async Task<(List<StepLabelledExample> Rows, int Failed)> LabelManyAsync(IEnumerable<(string Prompt, IReadOnlyList<string> Steps, string? Reference)> solutions,
        CancellationToken ct = default)
    {
        var rows = new List<StepLabelledExample>();
        int failed = 0;
        foreach (var (p, s, r) in solutions)
        {
            var row = await LabelAsync(p, s, r, ct).ConfigureAwait(false);
            if (row is null) failed++; else rows.Add(row);
        }
        return (rows, failed);
    }

    async Task<StepLabelledExample?> GenPrmAsync(string prompt, IReadOnlyList<string> steps, string? reference, CancellationToken ct)
    {
        var labels = new double[steps.Count];
        var rationales = new List<string>();
        for (int i = 0; i < steps.Count; i++)
        {
            var votes = await Task.WhenAll(Enumerable.Range(0, Options.Votes).Select(_ => _judge.VerifyStepAsync(prompt, steps, i, reference, ct))).ConfigureAwait(false);
            var parsed = votes.Where(v => v.Correct is not null).ToList();
            if (parsed.Count == 0) return null;
            labels[i] = parsed.Count(v => v.Correct == true) / (double)parsed.Count;   // share of verifications saying correct
            rationales.Add(parsed[0].Rationale);
            if (Options.StopAtFirstError && labels[i] < 0.5) break;                      // later labels stay 0
        }
        var fields = new Dictionary<string, string> { ["labeler"] = "genprm", ["rationales"] = JsonSerializer.Serialize(rationales) };
        if (reference is not null) fields["reference"] = reference;
        return new StepLabelledExample(prompt, [.. steps], labels, fields);
    }

    async Task<StepLabelledExample?> AuroraAsync(string prompt, IReadOnlyList<string> steps, string? reference, CancellationToken ct)
    {
        var sum = new double[steps.Count];
        int voters = 0;
        foreach (var style in Options.Ensemble)
        {
            bool[]? labels = style switch
            {
                JudgePromptStyle.SignList => await _judge.StepLabelsAsync(prompt, steps, reference, ct).ConfigureAwait(false),
                JudgePromptStyle.FirstError => await _judge.FirstErrorLabelsAsync(prompt, steps, reference, ct).ConfigureAwait(false),
                _ => await PerStepAsync(prompt, steps, reference, ct).ConfigureAwait(false),
            };
            if (labels is null) continue;
            voters++;
            for (int i = 0; i < steps.Count; i++) sum[i] += labels[i] ? 1 : 0;
        }
        if (voters == 0) return null;
        var mean = sum.Select(v => v / voters).ToArray();                                 // the ensemble's vote per step
        var fields = new Dictionary<string, string> { ["labeler"] = "aurora", ["ensemble"] = voters.ToString(CultureInfo.InvariantCulture) };
        if (reference is not null)
        {
            fields["reference"] = reference;
            if (Options.ReverseVerification && await _judge.MatchesReferenceAsync(prompt, steps, reference, ct).ConfigureAwait(false) is { } matches)
            {
                fields["matches_reference"] = matches ? "true" : "false";
                if (!matches) mean[^1] = 0;                                              // a wrong final answer: the last step is wrong
            }
        }
        return new StepLabelledExample(prompt, [.. steps], mean, fields);
    }

    async Task<bool[]?> PerStepAsync(string prompt, IReadOnlyList<string> steps, string? reference, CancellationToken ct)
    {
        var result = new bool[steps.Count];
        for (int i = 0; i < steps.Count; i++)
        {
            var (correct, _) = await _judge.VerifyStepAsync(prompt, steps, i, reference, ct).ConfigureAwait(false);
            if (correct is not { } c) return null;
            result[i] = c;
        }
        return result;
    }
}
