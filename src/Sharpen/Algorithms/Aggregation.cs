namespace Sharpen.Algorithms;

/// <summary>
/// The aggregation mode plus the counts it divides by. The counts are <b>global</b>: the number of response tokens
/// (or sequences) in the whole optimizer step, over every micro-batch, so that summing the micro-batch losses gives the
/// same value and gradient as one pass over the full batch. Leave a count null to use the current batch's own count
/// (correct only when the batch is the whole step).
/// </summary>
/// <param name="Mode">Which normaliser to use.</param>
/// <param name="GlobalTokens">Number of real (mask = 1) response tokens in the optimizer step; used by <see cref="LossAggregation.TokenMean"/>.</param>
/// <param name="GlobalSequences">Number of sequences in the optimizer step; used by the three <c>SeqMean*</c> modes.</param>
/// <param name="NormConstant">Dr. GRPO's constant normaliser (typically the maximum number of generated tokens); only for <see cref="LossAggregation.SeqMeanTokenSumNorm"/>.</param>
public sealed record Aggregation(
    LossAggregation Mode = LossAggregation.TokenMean,
    double? GlobalTokens = null,
    double? GlobalSequences = null,
    double NormConstant = 1.0);
