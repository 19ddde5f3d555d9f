using System.Text.Json;

namespace Sharpen.Data;

/// <summary>
/// A completion scored earlier, with the log-probabilities of its tokens under the policy that wrote
/// it (the behaviour policy μ): the rows of offline RL (TOPR). JSONL keys: <c>prompt</c>,
/// <c>completion</c>, <c>reward</c> (number), <c>logprobs</c> (one number per completion token,
/// optionally one more for the end-of-sequence token), other keys kept as fields.
/// </summary>
public sealed record ScoredCompletion(string Prompt, string Completion, double Reward, float[] LogProbs, IReadOnlyDictionary<string, string> Fields)
{
    const string Expected = "a JSON object with \"prompt\" and \"completion\" strings, a numeric \"reward\" and \"logprobs\", an array of numbers";

    /// <summary>Reads a scored-completions file; malformed lines stop with <c>file:line</c> or are counted and skipped.</summary>
    public static LoadResult<ScoredCompletion> Load(string path, bool skipBadLines = false) =>
        JsonlDataset.Read(path, Expected, row =>
        {
            var prompt = row.GetString("prompt", nonEmpty: true);
            var completion = row.GetString("completion");
            var reward = row.Get("reward");
            if (reward.ValueKind != JsonValueKind.Number || !double.IsFinite(reward.GetDouble())) throw row.Error("\"reward\" is not a finite number");
            var lp = row.Get("logprobs");
            if (lp.ValueKind != JsonValueKind.Array) throw row.Error($"\"logprobs\" is {JsonRow.Describe(lp.ValueKind)}, not an array");
            var logprobs = new float[lp.GetArrayLength()];
            int i = 0;
            foreach (var x in lp.EnumerateArray())
            {
                if (x.ValueKind != JsonValueKind.Number || !double.IsFinite(x.GetDouble()) || x.GetDouble() > 1e-6)
                    throw row.Error($"\"logprobs\"[{i}] is not a log-probability (a finite number ≤ 0)");
                logprobs[i++] = (float)x.GetDouble();
            }
            return new ScoredCompletion(prompt, completion, reward.GetDouble(), logprobs, row.ExtraFields("prompt", "completion", "reward", "logprobs"));
        }, skipBadLines);
}
