using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>PPO-ptx's pretraining term (Ouyang et al. 2022; Zheng et al. 2023 PPO-max): the actor loss becomes
/// L_PPO + γ · L_ptx with L_ptx = −E_{x∼D_pretrain}[log π(x)], here over the completion tokens of SFT rows.</summary>
public static class PretrainMix
{
    /// <summary>L_ptx = −Σ mask·log π / Σ mask: the token-mean negative log-likelihood. <paramref name="logp"/> and
    /// <paramref name="mask"/> are <c>(N, A)</c>; an all-zero mask gives 0.</summary>
    public static Tensor Nll(Tensor logp, Tensor mask) => -(logp * mask).sum() / mask.sum().clamp_min(1);
}
