namespace Sharpen.Algorithms;

/// <summary>Diagnostics of one policy-loss call, as plain numbers over the masked tokens of that call's batch.</summary>
/// <param name="ClipFraction">Share of tokens whose gradient a clip (or, for TOPR, a truncation) changed; see each loss.</param>
/// <param name="ApproxKl">Masked mean of ½(log π − log μ)², the k2 estimate of KL(μ ‖ π) (Schulman 2020).</param>
/// <param name="RatioMean">Masked mean of the token ratio π/μ.</param>
/// <param name="RatioMax">Largest token ratio π/μ over the masked tokens (0 when there are none).</param>
public sealed record PolicyLossMetrics(double ClipFraction, double ApproxKl, double RatioMean, double RatioMax);
