using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>What a policy loss may read besides <see cref="PolicyLossInput"/>: clipping, the aggregation with its global
/// counts, the sequence advantages of the micro-batch's rows <c>(b)</c>, the number of pairs in the minibatch (pairwise losses),
/// and η of regression losses (REFUEL's 1/η scales the log-ratios; 1 unless set).</summary>
public sealed record PolicyLossContext(ClipOptions Clip, Aggregation Aggregation, Tensor SequenceAdvantages, double MinibatchPairs, double Eta = 1.0);

/// <summary>A policy loss as a registry entry.</summary>
/// <param name="Compute">The loss and its metrics on one micro-batch.</param>
/// <param name="RowsPerUnit">Rows that must stay together in every (micro-)batch: 2 for pairwise losses (P3O), else 1.</param>
/// <param name="OffPolicy">Whether it corrects for samples from another policy, so it can train from logged data (TOPR).</param>
public sealed record PolicyLoss(Func<PolicyLossInput, PolicyLossContext, (Tensor Loss, PolicyLossMetrics Metrics)> Compute,
    int RowsPerUnit = 1, bool OffPolicy = false);
