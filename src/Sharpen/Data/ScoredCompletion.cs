using System.Text.Json;

namespace Sharpen.Data;

/// <summary>
/// A completion scored earlier: the rows of offline policy-gradient training (TOPR, CoPG, A-LoL). JSONL keys:
/// <c>prompt</c>, <c>completion</c>, <c>reward</c> (number) and, optionally, the log-probability of the completion
/// under the policy that wrote it (the behaviour policy μ), either per token as <c>logprobs</c> (one number per
/// completion token, optionally one more for the end-of-sequence token) or for the whole sequence as <c>logprob</c>
/// (their sum). Other keys are kept as fields. A consumer that needs the behaviour log-probs (TOPR needs them per
/// token) reports a row without them with its <see cref="Source"/>; CoPG and A-LoL need neither, since they score the
/// completions with a reference model themselves.
/// </summary>
/// <param name="Prompt">Conditioning text.</param>
/// <param name="Completion">The scored text.</param>
/// <param name="Reward">Its scalar reward.</param>
/// <param name="LogProbs">Per-token behaviour log-probs (<c>logprobs</c>), or null when the row has none.</param>
/// <param name="Fields">The row's other keys.</param>
/// <param name="LogProb">Sequence-level behaviour log-prob (<c>logprob</c>, or the sum of <c>logprobs</c>), or null.</param>
/// <param name="Source">Where the row came from, <c>file:line</c>, for errors raised after loading (null when built in code).</param>
public sealed record ScoredCompletion(string Prompt, string Completion, double Reward, float[]? LogProbs,
    IReadOnlyDictionary<string, string> Fields, double? LogProb = null, string? Source = null)
{
    /// <summary>Largest |reward| a row may carry (the bound reward functions have by default); beyond it the row is bad.</summary>
    public const double MaxAbsReward = 1e6;

    const string Expected = "a JSON object with \"prompt\" and \"completion\" strings, a numeric \"reward\" and optionally " +
                            "\"logprobs\" (an array of numbers ≤ 0, one per completion token) or \"logprob\" (a number ≤ 0, their sum)";

    /// <summary>Reads a scored-completions file; malformed lines stop with <c>file:line</c> or are counted and skipped.</summary>
    public static LoadResult<ScoredCompletion> Load(string path, bool skipBadLines = false) =>
        JsonlDataset.Read(path, Expected, row =>
        {
            var prompt = row.GetString("prompt", nonEmpty: true);
            var completion = row.GetString("completion");
            var reward = row.Get("reward");
            if (reward.ValueKind != JsonValueKind.Number || !double.IsFinite(reward.GetDouble())) throw row.Error("\"reward\" is not a finite number");
            if (Math.Abs(reward.GetDouble()) > MaxAbsReward)
                throw row.Error($"\"reward\" is {reward.GetRawText()}, beyond ±1e6 (rewards this large overflow float32 in the update; rescale them)");
            float[]? logprobs = null;
            if (row.Element.TryGetProperty("logprobs", out var lp))
            {
                if (lp.ValueKind != JsonValueKind.Array) throw row.Error($"\"logprobs\" is {JsonRow.Describe(lp.ValueKind)}, not an array");
                logprobs = new float[lp.GetArrayLength()];
                int i = 0;
                foreach (var x in lp.EnumerateArray())
                {
                    if (x.ValueKind != JsonValueKind.Number || !double.IsFinite(x.GetDouble()) || x.GetDouble() > 1e-6)
                        throw row.Error($"\"logprobs\"[{i}] is not a log-probability (a finite number ≤ 0)");
                    logprobs[i++] = (float)x.GetDouble();
                }
            }
            double? logprob = null;
            if (row.Element.TryGetProperty("logprob", out var sp))
            {
                if (sp.ValueKind != JsonValueKind.Number || !double.IsFinite(sp.GetDouble()) || sp.GetDouble() > 1e-6)
                    throw row.Error("\"logprob\" is not a log-probability (a finite number ≤ 0)");
                logprob = sp.GetDouble();
                if (logprobs is not null && Math.Abs(logprobs.Sum(x => (double)x) - logprob.Value) > 1e-3 * Math.Max(1, Math.Abs(logprob.Value)))
                    throw row.Error($"\"logprob\" ({logprob.Value}) is not the sum of \"logprobs\" ({logprobs.Sum(x => (double)x)})");
            }
            logprob ??= logprobs?.Sum(x => (double)x);
            return new ScoredCompletion(prompt, completion, reward.GetDouble(), logprobs,
                row.ExtraFields("prompt", "completion", "reward", "logprobs", "logprob"), logprob, $"{row.File}:{row.Line}");
        }, skipBadLines);
}
