namespace Sharpen.Algorithms;

/// <summary>Value targets of search trees as pure functions (the tree walking stays with the expert-iteration sampler).</summary>
public static class ValueTargets
{
    /// <summary>One step of ReST-MCTS*'s value recurrence (Zhang et al. 2024, arXiv:2406.03816). v_k = max(v_{k−1} + w_k, 0), w_k = (1 − v_{k−1}) / (m_k + 1) · (1 − 2 r_k), v_0 = 0.</summary>
    /// <param name="previous">v_{k−1} (0 at the root).</param>
    /// <param name="distance">m_k ≥ 0.</param>
    /// <param name="leadsToCorrect">r_k = 0 when true, 1 when false.</param>
    public static double RestMctsStep(double previous, int distance, bool leadsToCorrect)
    {
        if (distance < 0) throw new ArgumentOutOfRangeException(nameof(distance), distance, "the reasoning distance must be ≥ 0");
        int r = leadsToCorrect ? 0 : 1;
        return Math.Max(previous + (1 - previous) / (distance + 1) * (1 - 2 * r), 0);
    }
}
