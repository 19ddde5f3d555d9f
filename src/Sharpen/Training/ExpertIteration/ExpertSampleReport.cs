using System.Text.Json.Nodes;

namespace Sharpen.Training.ExpertIteration;

/// <summary>What the last sample stage spent and found beyond its candidates.</summary>
/// <param name="GeneratedTokens">Every token generated in the stage (a search spends more than its candidates' lengths).</param>
/// <param name="Metrics">Further columns for the iteration's metrics row (keys in snake_case; the loop's own keys win).</param>
public sealed record ExpertSampleReport(long GeneratedTokens, JsonObject Metrics);

/// <summary>An <see cref="IExpertSampler"/> that reports its own spending and numbers; <see cref="ExpertIterationTrainer"/> reads
/// <see cref="LastReport"/> right after each <see cref="IExpertSampler.Sample"/> call.</summary>
public interface IReportingExpertSampler : IExpertSampler
{
    /// <summary>The report of the last <see cref="IExpertSampler.Sample"/> call (null before the first).</summary>
    ExpertSampleReport? LastReport { get; }
}
