namespace Sharpen.Generation;

/// <summary>
/// One generated sequence.
/// </summary>
/// <param name="PromptIndex">Index of the prompt in the request.</param>
/// <param name="SampleIndex">Which of the prompt's samples this is (0..SamplesPerPrompt-1).</param>
/// <param name="PromptIds">The prompt's token ids (no padding).</param>
/// <param name="CompletionIds">Generated ids, including a final EOS when it stopped at one.</param>
/// <param name="CompletionText">Decoded completion, special tokens removed.</param>
/// <param name="LogProbs">Per completion token: log π(token | prefix) under the unmodified policy
/// (temperature 1, no top-k/top-p), whatever the sampling settings were.</param>
/// <param name="Stop">Why it stopped.</param>
public sealed record Rollout(int PromptIndex, int SampleIndex, int[] PromptIds, int[] CompletionIds,
    string CompletionText, float[] LogProbs, StopReason Stop)
{
    /// <summary>Completion mask: 1 for each completion token (all of <see cref="CompletionIds"/>).</summary>
    public float[] CompletionMask => Enumerable.Repeat(1f, CompletionIds.Length).ToArray();
}
