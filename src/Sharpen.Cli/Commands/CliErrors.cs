using System.Reflection;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Sharpen.Checkpoints;
using Sharpen.Data;
using Sharpen.Models;
using Sharpen.Recipes;
using Sharpen.Rewards;
using Sharpen.Tokenizers;
using Sharpen.Torch;
using Sharpen.Training;

namespace Sharpen.Cli.Commands;

/// <summary>
/// Turns every exception into one <c>error: ...</c> line on stderr and exit code 1. The library's own exceptions already
/// name the file, line, key or URL; libtorch's errors (<see cref="ExternalException"/>) are cut to their first line and,
/// for the common ones (an allocation that failed, sampling from NaN probabilities), explained. Anything else is reported
/// as an internal error with its type. <c>--debug</c> adds the stack trace.
/// </summary>
public static class CliErrors
{
    /// <summary>Set by the global <c>--debug</c> flag: print the full exception after the one-line error.</summary>
    public static bool ShowStackTraces { get; set; }

    /// <summary>Runs a command's action; any exception becomes one error line and exit code 1.</summary>
    public static int Run(Func<int> action)
    {
        try
        {
            return action();
        }
        catch (Exception e)
        {
            Report(e);
            return 1;
        }
    }

    /// <summary>The async form of <see cref="Run"/>.</summary>
    public static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (Exception e)
        {
            Report(e);
            return 1;
        }
    }

    /// <summary>Writes the error line for <paramref name="e"/> (and, with <c>--debug</c>, the stack trace) to stderr.</summary>
    public static void Report(Exception e)
    {
        Console.Error.WriteLine($"error: {Message(e)}");
        if (ShowStackTraces) Console.Error.WriteLine(e);
    }

    /// <summary>The one-line description of <paramref name="e"/> (no "error:" prefix).</summary>
    public static string Message(Exception e)
    {
        e = Unwrap(e);
        var text = FirstLine(e.Message);
        return e switch
        {
            OperationCanceledException => "interrupted",
            OutOfMemoryException => $"out of memory ({text}); use a smaller model, batch or sequence length",
            ExternalException x => Torch(x),
            _ when IsUserError(e) => text,
            _ => $"internal error ({e.GetType().Name}): {text} (run again with --debug for the stack trace, and please report it)",
        };
    }

    /// <summary>Whether <paramref name="e"/> describes bad input (a file, key, flag or server) rather than a defect.</summary>
    public static bool IsUserError(Exception e)
    {
        e = Unwrap(e);
        return e is Sharpen.Models.ModelConfigException or Sharpen.Checkpoints.CheckpointException or Sharpen.Checkpoints.SafetensorsFormatException
                   or Sharpen.Torch.TorchUnavailableException or Sharpen.Recipes.RecipeException or Sharpen.Data.DatasetFormatException
                   or Sharpen.Tokenizers.TokenizerFileException or Sharpen.Rewards.RewardValueException or Sharpen.Training.NonFiniteTrainingException or Sharpen.Export.GgufExportException or RegexMatchTimeoutException
                   or ArgumentException or IOException or UnauthorizedAccessException or FormatException or InvalidDataException
                   or ExternalException or OperationCanceledException or OutOfMemoryException
               || e.GetType().Name.EndsWith("FormatException", StringComparison.Ordinal)
               || e.GetType().Name.EndsWith("TokenizerException", StringComparison.Ordinal);
    }

    static Exception Unwrap(Exception e)
    {
        while (true)
        {
            if (e is AggregateException { InnerExceptions.Count: 1 } a) e = a.InnerExceptions[0];
            else if (e is TargetInvocationException { InnerException: { } t }) e = t;
            else if (e is TypeInitializationException { InnerException: { } ti }) e = ti;
            else return e;
        }
    }

    /// <summary>libtorch's message, first line only, with the usual causes named.</summary>
    static string Torch(ExternalException e)
    {
        var text = FirstLine(e.Message);
        if (text.Contains("probability tensor contains", StringComparison.OrdinalIgnoreCase))
            return $"sampling met non-finite probabilities: the model's weights hold NaN or Inf (a checkpoint saved from a diverged run?) (libtorch: {text})";
        if (Regex.Match(text, @"can't allocate memory: you tried to allocate (\d+) bytes") is { Success: true } m)
            return $"out of memory: libtorch could not allocate {double.Parse(m.Groups[1].Value) / (1 << 30):F1} GiB; use a smaller model, batch or sequence length";
        return $"libtorch: {text}";
    }

    static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.Length > 0 ? line : message.Trim();
    }
}
