using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>Critic losses as pure functions of tensors.</summary>
public static class ValueLosses
{
    /// <summary>
    /// PPO's clipped value loss (as in OpenAI baselines' ppo2; Schulman et al. 2017, arXiv:1707.06347):
    /// ½·max((V − R)², (clip(V, V_old − ε, V_old + ε) − R)²) per token, aggregated. ClipFraction is the masked share of
    /// tokens where the clipped term was the larger one (those tokens get no gradient).
    /// </summary>
    /// <param name="values">Current critic values V, <c>(B, A)</c>, requires grad.</param>
    /// <param name="oldValues">Values V_old at rollout time, <c>(B, A)</c>.</param>
    /// <param name="returns">Value targets R, <c>(B, A)</c> (from <see cref="AdvantageEstimators.Gae"/>).</param>
    /// <param name="mask">1 at real response tokens, 0 at padding, <c>(B, A)</c>.</param>
    /// <param name="clip">ε, the largest move of V away from V_old that still gets gradient.</param>
    /// <param name="agg">Aggregation.</param>
    public static (Tensor Loss, double ClipFraction) ClippedMse(Tensor values, Tensor oldValues, Tensor returns, Tensor mask, double clip, Aggregation agg)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(clip);
        LossAggregator.RequireSameShape2D(values, oldValues, nameof(oldValues));
        LossAggregator.RequireSameShape2D(values, returns, nameof(returns));
        LossAggregator.RequireSameShape2D(values, mask, nameof(mask));
        using var scope = NewDisposeScope();
        var target = returns.detach();                                           // (B, A)
        var old = oldValues.detach();                                             // (B, A)
        var clippedValues = old + (values - old).clamp(-clip, clip);              // (B, A)  clip(V, V_old − ε, V_old + ε)
        var unclippedError = (values - target).square();                          // (B, A)
        var clippedError = (clippedValues - target).square();                     // (B, A)
        var perToken = 0.5 * maximum(unclippedError, clippedError);               // ½ max((V − R)², (V_clip − R)²), arXiv:1707.06347 / baselines ppo2
        var loss = LossAggregator.Aggregate(perToken, mask, agg);
        double clipFraction;
        using (no_grad())
        {
            var m = mask.to_type(ScalarType.Float32);                             // (B, A)
            clipFraction = ((clippedError > unclippedError).to_type(ScalarType.Float32) * m).sum().item<float>()
                           / Math.Max(1f, m.sum().item<float>());
        }
        return (loss.MoveToOuterDisposeScope(), clipFraction);
    }
}
