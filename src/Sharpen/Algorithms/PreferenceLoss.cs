using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>The coefficients a preference loss may read (each loss reads its own; see <see cref="PreferenceLosses"/>).</summary>
/// <param name="Beta">β: the reward scale of dpo, cdpo, rdpo, simpo, spin (its λ).</param>
/// <param name="LabelSmoothing">cDPO's ε; also SimPO's and CPO's label smoothing (0 = none).</param>
/// <param name="FlipRate">rDPO's ε.</param>
/// <param name="Tau">IPO's τ.</param>
/// <param name="Lambda">ORPO's λ.</param>
/// <param name="Gamma">SimPO's (and cpo_simpo's) γ.</param>
/// <param name="Alpha">CPO's weight of the chosen completion's length-averaged NLL (TRL's <c>cpo_alpha</c>).</param>
/// <param name="Eta">INPO's η (the online-mirror-descent step; its target margin is 1/(2η)); INPO's τ is <paramref name="Tau"/>.</param>
public sealed record PreferenceCoefficients(double Beta = 0.1, double LabelSmoothing = 0.0, double FlipRate = 0.1, double Tau = 0.1,
    double Lambda = 0.1, double Gamma = 1.0, double Alpha = 1.0, double Eta = 0.1);

/// <summary>A preference loss as a registry entry.</summary>
/// <param name="Compute">Summed log-probs of a batch of pairs → loss and metrics.</param>
/// <param name="NeedsReference">Whether it reads the reference's log-probs (every loss but the reference-free ones).</param>
/// <param name="OnlineOnly">Whether it only makes sense against the previous iterate (SPIN, INPO), so offline recipes reject it.</param>
/// <param name="NeedsPrevious">Whether it reads the previous iterate's log-probs as well as the reference's (INPO).</param>
/// <param name="PairWeightField">The data column (a number in [0, 1] on every pair row) the trainer passes as
/// <see cref="PreferenceInput.PairWeights"/>: CREAM's <c>consistency</c>, UPO's <c>certainty</c>; null for the others.</param>
public sealed record PreferenceLoss(Func<PreferenceInput, PreferenceCoefficients, (Tensor Loss, PreferenceMetrics Metrics)> Compute,
    bool NeedsReference = true, bool OnlineOnly = false, bool NeedsPrevious = false, string? PairWeightField = null)
{
    /// <summary>Whether the offline trainer regroups the data into ranked lists and trains this loss listwise (TPO);
    /// <see cref="Compute"/> then covers the list of two a plain pair is.</summary>
    public bool Listwise { get; init; }
}
