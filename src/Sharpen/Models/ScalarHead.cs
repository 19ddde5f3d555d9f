using Sharpen.Torch;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sharpen.Models;

/// <summary>
/// A scalar head (value head for critics, reward head for reward models) on the final hidden
/// state: one linear map C → 1 named <c>score</c>, as Hugging Face's sequence-classification
/// models name it. Saved beside the model as <c>scalar_head.safetensors</c>.
/// </summary>
public sealed class ScalarHead : nn.Module<Tensor, Tensor>
{
    /// <summary>File name inside a checkpoint folder.</summary>
    public const string FileName = "scalar_head.safetensors";

    readonly Linear _score;

    /// <summary>A head for hidden size <paramref name="hiddenSize"/>, initialised to zero output.</summary>
    public ScalarHead(long hiddenSize, double initStd = 0.0) : base("scalar_head")
    {
        TorchRuntime.EnsureLoaded();
        _score = nn.Linear(hiddenSize, 1, hasBias: true);
        register_module("score", _score);
        using var _ = no_grad();
        if (initStd > 0) nn.init.normal_(_score.weight!, 0, initStd); else _score.weight!.zero_();
        _score.bias!.zero_();
    }

    /// <summary>(B, T, C) hidden states → (B, T) scalars.</summary>
    public override Tensor forward(Tensor hidden) => _score.forward(hidden).squeeze(-1);

    /// <summary>The value at each row's last real token: values (B, T), mask (B, T) with right or left padding → (B).</summary>
    public static Tensor AtLastToken(Tensor values, Tensor mask)
    {
        long t = values.shape[1];
        var idx = arange(t, dtype: ScalarType.Int64).view(1, t) * mask.to(ScalarType.Int64);   // (B, T)
        var last = idx.argmax(1, keepdim: true);                                              // (B, 1)
        return values.gather(1, last).squeeze(1);
    }
}
