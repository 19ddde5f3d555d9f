using Sharpen.Torch;
using static TorchSharp.torch;

namespace Sharpen.Algorithms;

/// <summary>
/// C-RLFT (OpenChat, Wang et al. 2023, arXiv:2309.11235): class-conditioned supervised fine-tuning in which each data
/// source (class) is a coarse reward, entering as the weight of its examples' log-likelihood.
/// </summary>
public static class ClassConditionedLoss
{
    /// <summary>
    /// −(1/N)·Σ_i w_i·Σ_t log π(y_i,t | c_i + x_i, y_i,&lt;t) over a micro-batch, where <paramref name="tokenLogp"/> (B, A) holds
    /// the completion log-probs (0 at padding), <paramref name="weights"/> (B) the class weight w_i of each row, and
    /// <paramref name="totalTokens"/> N the <b>unweighted</b> completion-token count of the whole optimizer step (all
    /// micro-batches). Because N is the step's global count and the weights are per row, summing this over micro-batches
    /// gives exactly the loss of one large batch; with every weight 1 it is the plain token-mean SFT loss. (Normalising by
    /// Σ w_i·T_i instead would give a step of only sub-optimal rows full weight and undo the class weighting.)
    /// </summary>
    public static Tensor WeightedNll(Tensor tokenLogp, Tensor weights, double totalTokens)
    {
        ArgumentNullException.ThrowIfNull(tokenLogp);
        ArgumentNullException.ThrowIfNull(weights);
        TorchRuntime.EnsureLoaded();
        if (tokenLogp.dim() != 2) throw new ArgumentException($"tokenLogp must be (B, A), got [{string.Join(", ", tokenLogp.shape)}]", nameof(tokenLogp));
        if (weights.dim() != 1 || weights.shape[0] != tokenLogp.shape[0])
            throw new ArgumentException($"weights must be (B) = ({tokenLogp.shape[0]}), got [{string.Join(", ", weights.shape)}]", nameof(weights));
        if (!(totalTokens > 0) || double.IsInfinity(totalTokens))
            throw new ArgumentOutOfRangeException(nameof(totalTokens), totalTokens, "totalTokens must be a finite number > 0.");
        using var scope = NewDisposeScope();
        var perRow = tokenLogp.sum(1);                                                          // (B)  Σ_t log π
        var loss = -(weights.detach().to_type(perRow.dtype) * perRow).sum() / totalTokens;      // −Σ_i w_i Σ_t log π / N, C-RLFT
        return loss.MoveToOuterDisposeScope();
    }
}
