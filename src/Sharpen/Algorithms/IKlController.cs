namespace Sharpen.Algorithms;

/// <summary>Holds the KL coefficient β and adjusts it from the observed KL (OpenRLHF/verl <c>KLController</c>).</summary>
public interface IKlController
{
    /// <summary>The current coefficient β.</summary>
    double Value { get; }

    /// <summary>Adjusts β after observing <paramref name="observedKl"/> over a batch of <paramref name="steps"/> samples.</summary>
    void Update(double observedKl, int steps);
}
