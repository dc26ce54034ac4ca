using System.Net;
using System.Net.Sockets;

namespace Sluice.Interop.Tests.Infrastructure;

internal static class Ports
{
    /// <summary>A loopback port that was free a moment ago (the kernel's pick for port 0).</summary>
    public static int FreeTcpPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    /// <summary>Waits until 127.0.0.1:<paramref name="port"/> accepts, or <paramref name="alive"/> turns false, or the time is up.</summary>
    public static async Task<bool> WaitAcceptingAsync(int port, TimeSpan timeout, Func<bool> alive)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (!alive())
                return false;
            using var client = new TcpClient();
            try
            {
                await client.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }
        return false;
    }
}
