// jsch_client connects to HOST PORT as git with JSch (Debian's
// libjsch-java, what Debian's JGit speaks SSH through) and runs whoami.
// It prints JSch's error and exits 1 when the connection fails.
// Run as: java -cp /usr/share/java/jsch.jar jsch_client.java HOST PORT
import com.jcraft.jsch.JSch;
import com.jcraft.jsch.JSchException;
import com.jcraft.jsch.Session;

public class jsch_client {
    public static void main(String[] args) {
        try {
            Session s = new JSch().getSession("git", args[0], Integer.parseInt(args[1]));
            // The failure under test comes before any host key or
            // authentication step.
            s.setConfig("StrictHostKeyChecking", "no");
            s.connect(10000);
            s.disconnect();
            System.out.println("connected");
        } catch (JSchException e) {
            System.err.println("jsch: " + e.getMessage());
            System.exit(1);
        }
    }
}
