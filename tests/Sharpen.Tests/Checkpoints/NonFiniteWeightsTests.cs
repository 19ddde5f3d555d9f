using Sharpen.Checkpoints;
using Sharpen.Models;
using static TorchSharp.torch;

namespace Sharpen.Tests.Checkpoints;

/// <summary>The checkpoint writer refuses weights a run could not continue from.</summary>
public class NonFiniteWeightsTests
{
    [Fact]
    public void Saving_a_nan_or_inf_tensor_is_an_error_naming_it_and_writes_nothing()
    {
        using var dir = new TempDir();
        using var good = ones(3);
        using var bad = tensor(new float[] { 1, float.NaN, float.PositiveInfinity, 2 });
        var e = Assert.Throws<CheckpointException>(() => Safetensors.Save(dir.File("w.safetensors"), new Dictionary<string, Tensor> { ["a"] = good, ["b.weight"] = bad }));
        Assert.Contains("tensor 'b.weight' holds 2 non-finite values (NaN or Inf)", e.Message);
        Assert.Empty(Directory.GetFiles(dir.Path));
    }

    [Fact]
    public void Float16_storage_refuses_values_it_would_turn_into_infinity()
    {
        using var dir = new TempDir();
        using var big = tensor(new float[] { 1, 70000 });
        var e = Assert.Throws<CheckpointException>(() => Safetensors.Save(dir.File("w.safetensors"), new Dictionary<string, Tensor> { ["x"] = big }, ScalarType.Float16));
        Assert.Contains("tensor 'x' holds values beyond float16's range", e.Message);
        Safetensors.Save(dir.File("w.safetensors"), new Dictionary<string, Tensor> { ["x"] = big });   // float32 holds it
    }

    [Fact]
    public void A_model_whose_weights_went_nan_is_not_saved()
    {
        using var dir = new TempDir();
        using var model = new CausalLM(new ModelConfig { VocabSize = 8, HiddenSize = 8, IntermediateSize = 16, NumHiddenLayers = 1, NumAttentionHeads = 2, NumKeyValueHeads = 2 }, seed: 1);
        using (no_grad()) model.named_parameters().First(p => p.name.EndsWith("mlp.up_proj.weight")).parameter[0, 0] = float.NaN;
        var e = Assert.Throws<CheckpointException>(() => HfCheckpoint.SaveAtomically(dir.File("m"), model));
        Assert.Contains("mlp.up_proj.weight' holds 1 non-finite value", e.Message);
        Assert.Empty(Directory.GetFileSystemEntries(dir.Path));    // neither the folder nor its temporary sibling
    }
}
