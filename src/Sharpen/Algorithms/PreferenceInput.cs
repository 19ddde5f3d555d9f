using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// Inputs shared by the preference losses: per-sequence <b>summed</b> log-probabilities of the chosen and rejected
/// completions of the same prompts, <c>(B)</c>.
/// </summary>
/// <param name="PolicyChosen">Σ_t log π_θ of the chosen completion, <c>(B)</c>, requires grad.</param>
/// <param name="PolicyRejected">Σ_t log π_θ of the rejected completion, <c>(B)</c>, requires grad.</param>
/// <param name="ReferenceChosen">Σ_t log π_ref of the chosen completion, <c>(B)</c>, no grad; null for reference-free losses.</param>
/// <param name="ReferenceRejected">Σ_t log π_ref of the rejected completion, <c>(B)</c>, no grad; null for reference-free losses.</param>
/// <param name="ChosenLengths">Number of tokens of the chosen completion, <c>(B)</c>, all &gt; 0; needed by ORPO and SimPO.</param>
/// <param name="RejectedLengths">Number of tokens of the rejected completion, <c>(B)</c>, all &gt; 0; needed by ORPO and SimPO.</param>
/// <param name="PreviousChosen">Σ_t log π_t of the chosen completion under the previous iterate, <c>(B)</c>, no grad; only INPO reads it.</param>
/// <param name="PreviousRejected">Σ_t log π_t of the rejected completion under the previous iterate, <c>(B)</c>, no grad; only INPO reads it.</param>
/// <param name="PairWeights">A per-pair number in [0, 1], <c>(B)</c>, no grad: CREAM's consistency rate C, UPO's certainty; only they read it.</param>
/// <param name="Strengths">Preference strength p ∈ [0, 1] that the chosen completion is better, <c>(B)</c>, no grad; only OSP's
/// soft-preference loss reads it (null = every pair certain, p = 1).</param>
public sealed record PreferenceInput(
    Tensor PolicyChosen,
    Tensor PolicyRejected,
    Tensor? ReferenceChosen,
    Tensor? ReferenceRejected,
    Tensor? ChosenLengths = null,
    Tensor? RejectedLengths = null,
    Tensor? PreviousChosen = null,
    Tensor? PreviousRejected = null,
    Tensor? PairWeights = null,
    Tensor? Strengths = null);
