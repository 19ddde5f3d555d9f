using Sharpen.Checkpoints;
using Sharpen.Models;
using Sharpen.Torch;

namespace Sharpen.Cli.Commands;

/// <summary>Turns the library's input errors into one readable line and exit code 1, without a stack trace.</summary>
static class CliErrors
{
    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    public static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception e) when (IsUserError(e))
        {
            Console.Error.WriteLine($"error: {e.Message}");
            return 1;
        }
    }

    static bool IsUserError(Exception e) =>
        e is ModelConfigException or CheckpointException or SafetensorsFormatException or TorchUnavailableException or Sharpen.Training.RecipeException
            or ArgumentException or IOException or UnauthorizedAccessException or FormatException or InvalidDataException
        || e.GetType().Name.EndsWith("FormatException", StringComparison.Ordinal)
        || e.GetType().Name.EndsWith("TokenizerException", StringComparison.Ordinal);
}
