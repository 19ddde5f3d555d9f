using Sharpen.Models;
using static TorchSharp.torch;

namespace Sharpen.Tests;

/// <summary>Named tensors copied out as float arrays, to compare weights across models, runs and files.</summary>
static class WeightValues
{
    public static Dictionary<string, float[]> Of(IEnumerable<(string Name, Tensor Tensor)> weights) =>
        weights.ToDictionary(w => w.Name, w => w.Tensor.detach().contiguous().data<float>().ToArray());

    /// <summary>A model's checkpoint weights (<see cref="CausalLM.Weights"/>).</summary>
    public static Dictionary<string, float[]> Of(CausalLM model) => Of(model.Weights());
}
