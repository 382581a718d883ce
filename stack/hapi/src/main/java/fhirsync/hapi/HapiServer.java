package fhirsync.hapi;

import ca.uhn.fhir.rest.server.RestfulServer;
import org.eclipse.jetty.ee10.servlet.ServletContextHandler;
import org.eclipse.jetty.ee10.servlet.ServletHolder;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.springframework.context.annotation.AnnotationConfigApplicationContext;

/**
 * Entry point: a HAPI FHIR JPA server (R4, in-memory H2) on 127.0.0.1 for the local stack and the
 * test:hapi tier. Usage: java -cp ... fhirsync.hapi.HapiServer [--port N]; port 0 (the default) picks
 * a free one. Prints one line "FHIRSYNC-HAPI READY http://127.0.0.1:PORT/fhir" when it answers, and
 * exits when its standard input closes, so a launcher that dies never leaves a JVM behind.
 */
public final class HapiServer {
	private HapiServer() {}

	public static void main(String[] args) throws Exception {
		int port = 0;
		for (int i = 0; i < args.length; i++) {
			if ("--port".equals(args[i]) && i + 1 < args.length) {
				port = Integer.parseInt(args[++i]);
			}
		}
		long started = System.nanoTime();
		AnnotationConfigApplicationContext spring = new AnnotationConfigApplicationContext(ServerConfig.class);
		RestfulServer fhir = spring.getBean(RestfulServer.class);

		Server jetty = new Server();
		ServerConnector connector = new ServerConnector(jetty);
		connector.setHost("127.0.0.1");
		connector.setPort(port);
		jetty.addConnector(connector);
		ServletContextHandler context = new ServletContextHandler();
		context.setContextPath("/");
		ServletHolder holder = new ServletHolder(fhir);
		holder.setInitOrder(1);
		context.addServlet(holder, "/fhir/*");
		context.addServlet(new ServletHolder(new JudgingValidator.ReportServlet()), "/validation-report");
		jetty.setHandler(context);
		jetty.start();

		Runnable stop = () -> {
			try {
				jetty.stop();
			} catch (Exception ignored) {
				// stopping anyway
			}
			spring.close();
		};
		Runtime.getRuntime().addShutdownHook(new Thread(stop));

		long ms = (System.nanoTime() - started) / 1_000_000;
		System.out.println("FHIRSYNC-HAPI READY http://127.0.0.1:" + connector.getLocalPort() + "/fhir (" + ms + " ms)");
		System.out.flush();

		// The launcher holds our stdin open; when it goes away (exit, crash, kill), we go too.
		if (!"false".equals(System.getProperty("fhirsync.exitOnStdinClose"))) {
			Thread watcher = new Thread(() -> {
				try {
					while (System.in.read() != -1) {
						// ignore input
					}
				} catch (Exception ignored) {
					// closed
				}
				System.exit(0);
			}, "stdin-watcher");
			watcher.setDaemon(true);
			watcher.start();
		}
		jetty.join();
	}
}
