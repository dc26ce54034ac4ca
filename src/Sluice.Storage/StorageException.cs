namespace Sluice.Storage;

/// <summary>
/// A back end could not be opened or used. The message is one line that names the path (or
/// back end) and the problem, fit to show an operator as is.
/// </summary>
public class StorageException : IOException
{
    public StorageException()
    {
    }

    public StorageException(string message)
        : base(message)
    {
    }

    public StorageException(string message, Exception? innerException)
        : base(message, innerException)
    {
    }
}
