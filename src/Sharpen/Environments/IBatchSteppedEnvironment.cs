namespace Sharpen.Environments;

/// <summary>
/// An environment whose steps are cheaper together (a frozen model behind it answers a batch in one call).
/// <see cref="MultiTurnRollout"/> steps the live environments that share a <see cref="BatchStepper"/> (by reference)
/// with one <see cref="IEnvironmentBatchStepper.StepAsync"/> per lock-step turn instead of one
/// <see cref="IEnvironment.StepAsync"/> each. Its own <see cref="IEnvironment.StepAsync"/> still works alone (a batch of one).
/// </summary>
public interface IBatchSteppedEnvironment : IEnvironment
{
    /// <summary>The stepper shared by the environments that can be stepped together.</summary>
    IEnvironmentBatchStepper BatchStepper { get; }
}

/// <summary>Steps several environments of one kind at once.</summary>
public interface IEnvironmentBatchStepper
{
    /// <summary>Plays <paramref name="actions"/>[i] in <paramref name="environments"/>[i] (distinct instances whose
    /// <see cref="IBatchSteppedEnvironment.BatchStepper"/> is this); the steps in order.</summary>
    Task<IReadOnlyList<EnvironmentStep>> StepAsync(IReadOnlyList<IBatchSteppedEnvironment> environments, IReadOnlyList<string> actions,
        CancellationToken cancellationToken = default);
}
