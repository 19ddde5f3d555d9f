using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>PPO-max's reward normalisation and clipping (Zheng et al. 2023, arXiv:2307.04964 §5.3):
/// r̃ = clip((r − μ) / (σ + ε), −δ, δ), with μ and σ the running mean and std of every reward seen so far.</summary>
public static class RewardNormalization
{
    /// <summary>(r − <paramref name="mean"/>) / (<paramref name="std"/> + eps) when <paramref name="normalize"/>, then clipped to
    /// ±<paramref name="clip"/> when it is positive. <paramref name="rewards"/> is any shape.</summary>
    public static Tensor Apply(Tensor rewards, bool normalize, double mean, double std, double clip, double eps = 1e-8)
    {
        var r = normalize ? (rewards - mean) / (std + eps) : rewards;
        return clip > 0 ? r.clamp(-clip, clip) : r;
    }
}
