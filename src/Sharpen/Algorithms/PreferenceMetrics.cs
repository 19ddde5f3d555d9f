namespace Sharpen.Algorithms;

/// <summary>
/// Diagnostics of one preference-loss call, as plain numbers averaged over the batch. The implicit reward of a completion
/// is β·(log π_θ − log π_ref) for the reference-based losses (DPO, arXiv:2305.18290 §5); each loss says which scale and
/// which reward it reports.
/// </summary>
/// <param name="Accuracy">Share of pairs whose chosen reward is strictly greater than the rejected reward.</param>
/// <param name="Margin">Mean of chosen reward − rejected reward.</param>
/// <param name="ChosenReward">Mean implicit reward of the chosen completions.</param>
/// <param name="RejectedReward">Mean implicit reward of the rejected completions.</param>
public sealed record PreferenceMetrics(double Accuracy, double Margin, double ChosenReward, double RejectedReward);
