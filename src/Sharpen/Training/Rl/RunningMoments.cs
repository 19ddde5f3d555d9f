using System.Text.Json.Nodes;

namespace Sharpen.Training.Rl;

/// <summary>Running mean and variance of rewards (Welford), for PPO-max reward normalisation.</summary>
sealed class RunningMoments
{
    long _n;
    double _mean, _m2;
    public double Mean => _mean;
    public double Std => _n > 1 ? Math.Sqrt(_m2 / (_n - 1)) : 1.0;

    public void Update(IEnumerable<double> xs)
    {
        foreach (var x in xs)
        {
            _n++;
            double d = x - _mean;
            _mean += d / _n;
            _m2 += d * (x - _mean);
        }
    }

    public JsonObject ToJson() => new() { ["n"] = _n, ["mean"] = _mean, ["m2"] = _m2 };

    public static RunningMoments FromJson(JsonObject? o) => o is null ? new() : new()
    {
        _n = o["n"]!.GetValue<long>(), _mean = o["mean"]!.GetValue<double>(), _m2 = o["m2"]!.GetValue<double>(),
    };
}
